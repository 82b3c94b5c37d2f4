//! Our own form of a parsed expression: the `jmespath` crate's AST, measured
//! without recursion, then lowered into a flat arena of nodes (no boxes, so
//! dropping it never recurses) with function names and arities resolved.

use jmespath::ast::{Ast, Comparator, KeyValuePair};
use serde_json::Value;

use super::{MAX_AST_DEPTH, MAX_AST_NODES};

/// Index of a node in [`Program::nodes`].
pub(super) type NodeId = usize;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

macro_rules! functions {
    ($($variant:ident = $name:literal, $min:literal, $max:expr;)*) => {
        /// The built-in functions of the JMESPath specification.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Func {
            $($variant,)*
        }

        impl Func {
            fn lookup(name: &str) -> Option<Func> {
                match name {
                    $($name => Some(Func::$variant),)*
                    _ => None,
                }
            }

            /// The name the expression calls it by.
            pub(super) fn name(self) -> &'static str {
                match self {
                    $(Func::$variant => $name,)*
                }
            }

            /// Fewest and most arguments (`None`: variadic).
            fn arity(self) -> (usize, Option<usize>) {
                match self {
                    $(Func::$variant => ($min, $max),)*
                }
            }
        }
    };
}

functions! {
    Abs = "abs", 1, Some(1);
    Avg = "avg", 1, Some(1);
    Ceil = "ceil", 1, Some(1);
    Contains = "contains", 2, Some(2);
    EndsWith = "ends_with", 2, Some(2);
    Floor = "floor", 1, Some(1);
    Join = "join", 2, Some(2);
    Keys = "keys", 1, Some(1);
    Length = "length", 1, Some(1);
    Map = "map", 2, Some(2);
    Max = "max", 1, Some(1);
    MaxBy = "max_by", 2, Some(2);
    Merge = "merge", 1, None;
    Min = "min", 1, Some(1);
    MinBy = "min_by", 2, Some(2);
    NotNull = "not_null", 1, None;
    Reverse = "reverse", 1, Some(1);
    Sort = "sort", 1, Some(1);
    SortBy = "sort_by", 2, Some(2);
    StartsWith = "starts_with", 2, Some(2);
    Sum = "sum", 1, Some(1);
    ToArray = "to_array", 1, Some(1);
    ToNumber = "to_number", 1, Some(1);
    ToString = "to_string", 1, Some(1);
    Type = "type", 1, Some(1);
    Values = "values", 1, Some(1);
}

/// One node; children are indices into the same arena.
#[derive(Debug)]
pub(super) enum Node {
    Identity,
    Field(String),
    Index(i32),
    Slice {
        start: Option<i32>,
        stop: Option<i32>,
        step: i32,
    },
    Literal(Value),
    /// `a.b.c` and `a | b | c`: each step applied to the previous result
    /// (the crate nests these to the left; flattened here).
    Chain(Vec<NodeId>),
    Projection(NodeId, NodeId),
    Flatten(NodeId),
    ObjectValues(NodeId),
    Condition(NodeId, NodeId),
    Comparison(Cmp, NodeId, NodeId),
    Or(NodeId, NodeId),
    And(NodeId, NodeId),
    Not(NodeId),
    MultiList(Vec<NodeId>),
    MultiHash(Vec<(String, NodeId)>),
    Function(Func, Vec<NodeId>),
    Expref(NodeId),
}

/// A lowered expression.
#[derive(Debug)]
pub(super) struct Program {
    nodes: Vec<Node>,
    root: NodeId,
}

impl Program {
    /// Measures `ast` (depth and node count, without recursion), then lowers
    /// it.
    pub(super) fn lower(ast: &Ast) -> Result<Program, String> {
        measure(ast)?;
        let mut program = Program {
            nodes: Vec::new(),
            root: 0,
        };
        program.root = program.add(ast, 1)?;
        Ok(program)
    }

    pub(super) fn root(&self) -> NodeId {
        self.root
    }

    pub(super) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Lowers `ast`; `depth` is already bounded by [`measure`], and checked
    /// again so that this recursion can never go deeper than the limit.
    /// Each level is `add` + `lowered` + at most one helper, all with few
    /// locals (a debug build gives every temporary its own stack slot).
    fn add(&mut self, ast: &Ast, depth: usize) -> Result<NodeId, String> {
        if depth > MAX_AST_DEPTH {
            return Err(depth_error());
        }
        let node = self.lowered(ast, depth.saturating_add(1))?;
        let id = self.nodes.len();
        self.nodes.push(node);
        Ok(id)
    }

    fn lowered(&mut self, ast: &Ast, down: usize) -> Result<Node, String> {
        match ast {
            Ast::Identity { .. } => Ok(Node::Identity),
            Ast::Field { name, .. } => Ok(Node::Field(name.clone())),
            Ast::Index { idx, .. } => Ok(Node::Index(*idx)),
            Ast::Slice {
                start, stop, step, ..
            } => slice(*start, *stop, *step),
            Ast::Literal { value, .. } => literal(value),
            Ast::Subexpr { lhs, rhs, .. } => self.chain(lhs, rhs, down),
            Ast::Projection { lhs, rhs, .. } => self.pair(lhs, rhs, down, Node::Projection),
            Ast::Condition {
                predicate, then, ..
            } => self.pair(predicate, then, down, Node::Condition),
            Ast::Comparison {
                comparator,
                lhs,
                rhs,
                ..
            } => {
                let cmp = match comparator {
                    Comparator::Equal => Cmp::Eq,
                    Comparator::NotEqual => Cmp::Ne,
                    Comparator::LessThan => Cmp::Lt,
                    Comparator::LessThanEqual => Cmp::Le,
                    Comparator::GreaterThan => Cmp::Gt,
                    Comparator::GreaterThanEqual => Cmp::Ge,
                };
                self.pair(lhs, rhs, down, |l, r| Node::Comparison(cmp, l, r))
            }
            Ast::Or { lhs, rhs, .. } => self.pair(lhs, rhs, down, Node::Or),
            Ast::And { lhs, rhs, .. } => self.pair(lhs, rhs, down, Node::And),
            Ast::Flatten { node, .. } => self.add(node, down).map(Node::Flatten),
            Ast::ObjectValues { node, .. } => self.add(node, down).map(Node::ObjectValues),
            Ast::Not { node, .. } => self.add(node, down).map(Node::Not),
            Ast::Expref { ast, .. } => self.add(ast, down).map(Node::Expref),
            Ast::MultiList { elements, .. } => self.list(elements, down).map(Node::MultiList),
            Ast::MultiHash { elements, .. } => self.hash(elements, down),
            Ast::Function { name, args, .. } => self.function(name, args, down),
        }
    }

    fn pair(
        &mut self,
        lhs: &Ast,
        rhs: &Ast,
        down: usize,
        make: impl FnOnce(NodeId, NodeId) -> Node,
    ) -> Result<Node, String> {
        let l = self.add(lhs, down)?;
        let r = self.add(rhs, down)?;
        Ok(make(l, r))
    }

    fn list(&mut self, elements: &[Ast], down: usize) -> Result<Vec<NodeId>, String> {
        let mut ids = Vec::with_capacity(elements.len());
        for element in elements {
            ids.push(self.add(element, down)?);
        }
        Ok(ids)
    }

    fn hash(&mut self, elements: &[KeyValuePair], down: usize) -> Result<Node, String> {
        let mut pairs = Vec::with_capacity(elements.len());
        for kv in elements {
            pairs.push((kv.key.clone(), self.add(&kv.value, down)?));
        }
        Ok(Node::MultiHash(pairs))
    }

    /// `a.b.c` parses as `Subexpr(Subexpr(a, b), c)`: flattened into one
    /// chain, so that long chains neither recurse here nor when evaluated.
    fn chain(&mut self, lhs: &Ast, rhs: &Ast, down: usize) -> Result<Node, String> {
        let mut rights = vec![rhs];
        let mut base = lhs;
        while let Ast::Subexpr { lhs, rhs, .. } = base {
            rights.push(&**rhs);
            base = &**lhs;
        }
        let mut steps = Vec::with_capacity(rights.len().saturating_add(1));
        steps.push(self.add(base, down)?);
        for step in rights.into_iter().rev() {
            steps.push(self.add(step, down)?);
        }
        Ok(Node::Chain(steps))
    }

    fn function(&mut self, name: &str, args: &[Ast], down: usize) -> Result<Node, String> {
        let func = Func::lookup(name).ok_or_else(|| {
            format!(
                "unknown function {name}(); the functions are those of the JMESPath \
                 specification, like length(), join() or to_string()"
            )
        })?;
        let (min, max) = func.arity();
        let given = args.len();
        if given < min || max.is_some_and(|max| given > max) {
            let wanted = match max {
                Some(max) if max == min => format!("{min}"),
                Some(max) => format!("{min} to {max}"),
                None => format!("at least {min}"),
            };
            return Err(format!(
                "{name}() takes {wanted} argument(s); it is given {given}"
            ));
        }
        Ok(Node::Function(func, self.list(args, down)?))
    }
}

fn slice(start: Option<i32>, stop: Option<i32>, step: i32) -> Result<Node, String> {
    if step == 0 {
        return Err("a slice step cannot be 0 (use [::1] or leave it out)".into());
    }
    Ok(Node::Slice { start, stop, step })
}

fn literal(value: &jmespath::Rcvar) -> Result<Node, String> {
    serde_json::to_value(&**value)
        .map(Node::Literal)
        .map_err(|_| "a literal cannot be represented as JSON".to_string())
}

fn depth_error() -> String {
    format!(
        "the parsed expression is more than {MAX_AST_DEPTH} levels deep (limit MAX_AST_DEPTH = \
         {MAX_AST_DEPTH}): a jmesPath that selects a value is a short chain, like \
         data.credentials[0].password"
    )
}

/// Checks the crate's AST against [`MAX_AST_DEPTH`] and [`MAX_AST_NODES`]
/// with an explicit stack.
fn measure(ast: &Ast) -> Result<(), String> {
    let mut stack: Vec<(&Ast, usize)> = vec![(ast, 1)];
    let mut count: usize = 0;
    while let Some((node, depth)) = stack.pop() {
        count = count.saturating_add(1);
        if count > MAX_AST_NODES {
            return Err(format!(
                "the parsed expression has more than {MAX_AST_NODES} nodes (limit \
                 MAX_AST_NODES = {MAX_AST_NODES}): a jmesPath that selects a value has a few, \
                 like data.credentials[0].password"
            ));
        }
        if depth > MAX_AST_DEPTH {
            return Err(depth_error());
        }
        let down = depth.saturating_add(1);
        match node {
            Ast::Identity { .. }
            | Ast::Field { .. }
            | Ast::Index { .. }
            | Ast::Literal { .. }
            | Ast::Slice { .. } => {}
            Ast::Comparison { lhs, rhs, .. }
            | Ast::Projection { lhs, rhs, .. }
            | Ast::And { lhs, rhs, .. }
            | Ast::Or { lhs, rhs, .. }
            | Ast::Subexpr { lhs, rhs, .. } => {
                stack.push((lhs, down));
                stack.push((rhs, down));
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                stack.push((predicate, down));
                stack.push((then, down));
            }
            Ast::Expref { ast: node, .. }
            | Ast::Flatten { node, .. }
            | Ast::Not { node, .. }
            | Ast::ObjectValues { node, .. } => stack.push((node, down)),
            Ast::Function { args: nodes, .. }
            | Ast::MultiList {
                elements: nodes, ..
            } => stack.extend(nodes.iter().map(|n| (n, down))),
            Ast::MultiHash { elements, .. } => {
                stack.extend(elements.iter().map(|kv| (&kv.value, down)));
            }
        }
    }
    Ok(())
}
