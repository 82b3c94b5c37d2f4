//! The evaluator: walks a [`Program`] over a borrowed `serde_json::Value`,
//! charging every step to a fuel budget and every value it creates to a
//! byte budget (see the limits in the parent module).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use serde_json::{Map, Number, Value};

use super::ir::{Cmp, Func, Node, NodeId, Program};
use super::{EVAL_FUEL, FUEL_BYTES_PER_UNIT, MAX_AST_DEPTH, MAX_CREATED_BYTES, MAX_VALUE_DEPTH};

/// A value during evaluation: parts of the document and of the expression's
/// literals are borrowed (`Str`, `JArr`, `JObj`), what the expression builds
/// is reference-counted, so copying a value never copies its content.
/// `Arr` and `Obj` carry how deeply they nest values the evaluation created.
#[derive(Clone, Debug)]
pub(super) enum Val<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(&'a str),
    OwnedStr(Rc<str>),
    JArr(&'a [Value]),
    Arr(Rc<Vec<Val<'a>>>, u32),
    JObj(&'a Map<String, Value>),
    Obj(Rc<BTreeMap<&'a str, Val<'a>>>, u32),
    Expref(NodeId),
}

/// Approximate bytes of one array element, for the created-bytes budget.
pub(super) const VAL_BYTES: usize = std::mem::size_of::<Val<'static>>();
/// Approximate bytes of one object entry (key, value, tree overhead).
pub(super) const ENTRY_BYTES: usize = VAL_BYTES + 16 + 16;

/// Fuel for one entry inserted into a built object: a B-tree insert costs
/// about four times an ordinary step (measured: `merge` of big objects).
pub(super) const INSERT_FUEL: u64 = 4;

/// JMESPath's types, named as in its error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    String,
    Number,
    Boolean,
    Array,
    Object,
    Expref,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::Array => "array",
            Kind::Object => "object",
            Kind::Expref => "expref",
        }
    }

    /// The name with an article, for messages.
    pub(super) fn described(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Boolean => "a boolean",
            Kind::Array => "an array",
            Kind::Object => "an object",
            Kind::Expref => "an expression reference (&...)",
        }
    }
}

/// A borrowed view of an array value.
#[derive(Clone, Copy)]
pub(super) enum ArrRef<'v, 'a> {
    Json(&'a [Value]),
    Own(&'v [Val<'a>]),
}

impl<'v, 'a> ArrRef<'v, 'a> {
    pub(super) fn len(self) -> usize {
        match self {
            ArrRef::Json(a) => a.len(),
            ArrRef::Own(a) => a.len(),
        }
    }

    pub(super) fn get(self, i: usize) -> Option<Val<'a>> {
        match self {
            ArrRef::Json(a) => a.get(i).map(Val::from_json),
            ArrRef::Own(a) => a.get(i).cloned(),
        }
    }

    pub(super) fn iter(self) -> impl Iterator<Item = Val<'a>> + 'v
    where
        'a: 'v,
    {
        let (json, own) = match self {
            ArrRef::Json(a) => (a, &[][..]),
            ArrRef::Own(a) => (&[][..], a),
        };
        json.iter().map(Val::from_json).chain(own.iter().cloned())
    }
}

/// A borrowed view of an object value; entries come in key order (serde_json's
/// `Map` is a `BTreeMap` in this build: see the test
/// `document_objects_iterate_in_key_order`).
#[derive(Clone, Copy)]
pub(super) enum ObjRef<'v, 'a> {
    Json(&'a Map<String, Value>),
    Own(&'v BTreeMap<&'a str, Val<'a>>),
}

impl<'v, 'a> ObjRef<'v, 'a> {
    pub(super) fn len(self) -> usize {
        match self {
            ObjRef::Json(m) => m.len(),
            ObjRef::Own(m) => m.len(),
        }
    }

    pub(super) fn get(self, key: &str) -> Option<Val<'a>> {
        match self {
            ObjRef::Json(m) => m.get(key).map(Val::from_json),
            ObjRef::Own(m) => m.get(key).cloned(),
        }
    }

    pub(super) fn iter(self) -> impl Iterator<Item = (&'a str, Val<'a>)> + 'v
    where
        'a: 'v,
    {
        let (json, own) = match self {
            ObjRef::Json(m) => (Some(m), None),
            ObjRef::Own(m) => (None, Some(m)),
        };
        json.into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), Val::from_json(v))))
            .chain(
                own.into_iter()
                    .flat_map(|m| m.iter().map(|(k, v)| (*k, v.clone()))),
            )
    }
}

impl<'a> Val<'a> {
    pub(super) fn from_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.clone()),
            Value::String(s) => Val::Str(s),
            Value::Array(a) => Val::JArr(a),
            Value::Object(m) => Val::JObj(m),
        }
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Val::Null => Kind::Null,
            Val::Bool(_) => Kind::Boolean,
            Val::Num(_) => Kind::Number,
            Val::Str(_) | Val::OwnedStr(_) => Kind::String,
            Val::JArr(_) | Val::Arr(..) => Kind::Array,
            Val::JObj(_) | Val::Obj(..) => Kind::Object,
            Val::Expref(_) => Kind::Expref,
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::OwnedStr(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Num(n) => n.as_f64(),
            _ => None,
        }
    }

    pub(super) fn as_array(&self) -> Option<ArrRef<'_, 'a>> {
        match self {
            Val::JArr(a) => Some(ArrRef::Json(a)),
            Val::Arr(a, _) => Some(ArrRef::Own(a)),
            _ => None,
        }
    }

    pub(super) fn as_object(&self) -> Option<ObjRef<'_, 'a>> {
        match self {
            Val::JObj(m) => Some(ObjRef::Json(m)),
            Val::Obj(m, _) => Some(ObjRef::Own(m)),
            _ => None,
        }
    }

    /// How deeply this value nests values the evaluation created.
    pub(super) fn nesting(&self) -> u32 {
        match self {
            Val::Arr(_, n) | Val::Obj(_, n) => *n,
            _ => 0,
        }
    }

    /// JMESPath truthiness (the crate's: an expression reference is false).
    pub(super) fn truthy(&self) -> bool {
        match self {
            Val::Null | Val::Expref(_) => false,
            Val::Bool(b) => *b,
            Val::Num(_) => true,
            Val::Str(_) | Val::OwnedStr(_) => self.as_str().is_some_and(|s| !s.is_empty()),
            Val::JArr(_) | Val::Arr(..) => self.as_array().is_some_and(|a| a.len() > 0),
            Val::JObj(_) | Val::Obj(..) => self.as_object().is_some_and(|o| o.len() > 0),
        }
    }

    fn field(&self, name: &str) -> Val<'a> {
        self.as_object()
            .and_then(|o| o.get(name))
            .unwrap_or(Val::Null)
    }
}

/// Equality of numbers as the crate has it: exact, or within a relative
/// epsilon (so that 0.7100000000000002 equals 0.71).
fn float_eq(a: f64, b: f64) -> bool {
    if a == b {
        true
    } else if !a.is_normal() || !b.is_normal() {
        (a - b).abs() < f64::EPSILON * f64::MIN_POSITIVE
    } else {
        (a - b).abs() / (a.abs() + b.abs()) < f64::EPSILON
    }
}

/// Order of two values as the crate sorts them: numbers numerically, strings
/// by bytes, anything else (and values of different types) equal.
pub(super) fn order(a: &Val<'_>, b: &Val<'_>) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Less);
    }
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return x.cmp(y);
    }
    Ordering::Equal
}

/// One evaluation: the program, and what is left of each budget.
pub(super) struct Evaluator<'a> {
    program: &'a Program,
    fuel: u64,
    created: usize,
    depth: usize,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(program: &'a Program) -> Evaluator<'a> {
        Evaluator {
            program,
            fuel: EVAL_FUEL,
            created: 0,
            depth: 0,
        }
    }

    /// Evaluates the program with `document` as the current node.
    pub(super) fn run(&mut self, document: &'a Value) -> Result<Val<'a>, String> {
        let root = Val::from_json(document);
        self.eval(self.program.root(), &root)
    }

    /// Spends `units` of fuel.
    pub(super) fn tick(&mut self, units: u64) -> Result<(), String> {
        match self.fuel.checked_sub(units) {
            Some(left) => {
                self.fuel = left;
                Ok(())
            }
            None => {
                self.fuel = 0;
                Err(format!(
                    "the evaluation needs more than {EVAL_FUEL} steps (limit EVAL_FUEL = \
                     {EVAL_FUEL}; each node evaluated, element visited, comparison and \
                     {FUEL_BYTES_PER_UNIT} bytes handled is a step): select the value \
                     directly, like data.password, instead of searching or rebuilding the \
                     document"
                ))
            }
        }
    }

    /// Spends fuel for handling `bytes` bytes (a unit per started
    /// [`FUEL_BYTES_PER_UNIT`]).
    pub(super) fn tick_bytes(&mut self, bytes: usize) -> Result<(), String> {
        let units = bytes.div_ceil(FUEL_BYTES_PER_UNIT.max(1));
        self.tick(u64::try_from(units).unwrap_or(u64::MAX))
    }

    /// Accounts for `bytes` of newly created values; fails before the total
    /// passes [`MAX_CREATED_BYTES`].
    pub(super) fn alloc(&mut self, bytes: usize) -> Result<(), String> {
        let total = self.created.saturating_add(bytes);
        if total > MAX_CREATED_BYTES {
            return Err(self.created_error());
        }
        self.created = total;
        self.tick_bytes(bytes)
    }

    /// Bytes that may still be created.
    pub(super) fn room(&self) -> usize {
        MAX_CREATED_BYTES.saturating_sub(self.created)
    }

    pub(super) fn created_error(&self) -> String {
        format!(
            "the evaluation builds more than {MAX_CREATED_BYTES} bytes of values (limit \
             MAX_CREATED_BYTES = {MAX_CREATED_BYTES}): select a value from the document \
             instead of building large ones"
        )
    }

    fn value_depth_error() -> String {
        format!(
            "a value is nested more than {MAX_VALUE_DEPTH} levels deep (limit MAX_VALUE_DEPTH \
             = {MAX_VALUE_DEPTH}): select a value nearer the top of the document"
        )
    }

    /// Wraps `items` (already charged) into an array value.
    pub(super) fn array(&mut self, items: Vec<Val<'a>>) -> Result<Val<'a>, String> {
        let nesting = items
            .iter()
            .map(Val::nesting)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        if nesting as usize > MAX_VALUE_DEPTH {
            return Err(Self::value_depth_error());
        }
        Ok(Val::Arr(Rc::new(items), nesting))
    }

    /// Wraps `map` (already charged) into an object value.
    pub(super) fn object(&mut self, map: BTreeMap<&'a str, Val<'a>>) -> Result<Val<'a>, String> {
        let nesting = map
            .values()
            .map(Val::nesting)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        if nesting as usize > MAX_VALUE_DEPTH {
            return Err(Self::value_depth_error());
        }
        Ok(Val::Obj(Rc::new(map), nesting))
    }

    /// Pushes `value` onto an array being built, charging its element.
    pub(super) fn push(&mut self, out: &mut Vec<Val<'a>>, value: Val<'a>) -> Result<(), String> {
        self.alloc(VAL_BYTES)?;
        out.push(value);
        Ok(())
    }

    /// A string the evaluation created, charged.
    pub(super) fn string(&mut self, s: &str) -> Result<Val<'a>, String> {
        self.alloc(s.len().saturating_add(16))?;
        Ok(Val::OwnedStr(Rc::from(s)))
    }

    /// Evaluates node `id` against `current`. The recursion follows the
    /// program's nesting, which [`MAX_AST_DEPTH`] bounds; the explicit count
    /// makes that bound hold here too.
    pub(super) fn eval(&mut self, id: NodeId, current: &Val<'a>) -> Result<Val<'a>, String> {
        // Each level of this recursion is eval + dispatch + one helper:
        // the helpers keep their locals out of these two frames (a debug
        // build gives every temporary of a function its own stack slot).
        let node = self.enter(id)?;
        let result = self.dispatch(node, current);
        self.depth = self.depth.saturating_sub(1);
        result
    }

    /// Charges a node, finds it and counts one more level of evaluation.
    fn enter(&mut self, id: NodeId) -> Result<&'a Node, String> {
        self.tick(1)?;
        let program = self.program;
        let node = program
            .node(id)
            .ok_or_else(|| "internal error: dangling node".to_string())?;
        if self.depth >= MAX_AST_DEPTH {
            return Err(format!(
                "the evaluation nests more than {MAX_AST_DEPTH} levels deep (limit \
                 MAX_AST_DEPTH = {MAX_AST_DEPTH})"
            ));
        }
        self.depth = self.depth.saturating_add(1);
        Ok(node)
    }

    fn dispatch(&mut self, node: &'a Node, current: &Val<'a>) -> Result<Val<'a>, String> {
        match node {
            Node::Identity => Ok(current.clone()),
            Node::Field(name) => Ok(current.field(name)),
            Node::Index(i) => Ok(index(current, *i)),
            Node::Slice { start, stop, step } => self.slice(current, *start, *stop, *step),
            Node::Literal(value) => Ok(Val::from_json(value)),
            Node::Chain(steps) => self.chain(steps, current),
            Node::Projection(lhs, rhs) => self.projection(*lhs, *rhs, current),
            Node::Flatten(inner) => self.flatten(*inner, current),
            Node::ObjectValues(inner) => self.object_values(*inner, current),
            Node::Condition(predicate, then) => self.condition(*predicate, *then, current),
            Node::Comparison(cmp, lhs, rhs) => self.comparison(*cmp, *lhs, *rhs, current),
            Node::Or(lhs, rhs) => self.logic(*lhs, *rhs, current, true),
            Node::And(lhs, rhs) => self.logic(*lhs, *rhs, current, false),
            Node::Not(inner) => self.not(*inner, current),
            Node::MultiList(items) => self.multi_list(items, current),
            Node::MultiHash(pairs) => self.multi_hash(pairs, current),
            Node::Function(func, args) => self.function(*func, args, current),
            Node::Expref(inner) => Ok(Val::Expref(*inner)),
        }
    }

    fn condition(
        &mut self,
        predicate: NodeId,
        then: NodeId,
        current: &Val<'a>,
    ) -> Result<Val<'a>, String> {
        if self.eval(predicate, current)?.truthy() {
            self.eval(then, current)
        } else {
            Ok(Val::Null)
        }
    }

    /// `lhs || rhs` (`or`) or `lhs && rhs`.
    fn logic(
        &mut self,
        lhs: NodeId,
        rhs: NodeId,
        current: &Val<'a>,
        or: bool,
    ) -> Result<Val<'a>, String> {
        let left = self.eval(lhs, current)?;
        if left.truthy() == or {
            Ok(left)
        } else {
            self.eval(rhs, current)
        }
    }

    fn not(&mut self, inner: NodeId, current: &Val<'a>) -> Result<Val<'a>, String> {
        Ok(Val::Bool(!self.eval(inner, current)?.truthy()))
    }

    fn function(
        &mut self,
        func: Func,
        args: &[NodeId],
        current: &Val<'a>,
    ) -> Result<Val<'a>, String> {
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(self.eval(*arg, current)?);
        }
        super::functions::call(self, func, &values)
    }

    fn chain(&mut self, steps: &[NodeId], current: &Val<'a>) -> Result<Val<'a>, String> {
        let mut value = current.clone();
        for step in steps {
            value = self.eval(*step, &value)?;
        }
        Ok(value)
    }

    fn slice(
        &mut self,
        current: &Val<'a>,
        start: Option<i32>,
        stop: Option<i32>,
        step: i32,
    ) -> Result<Val<'a>, String> {
        let Some(array) = current.as_array() else {
            return Ok(Val::Null);
        };
        let mut out = Vec::new();
        for i in slice_indices(array.len(), start, stop, step) {
            self.tick(1)?;
            if let Some(v) = array.get(i) {
                self.push(&mut out, v)?;
            }
        }
        self.array(out)
    }

    fn projection(
        &mut self,
        lhs: NodeId,
        rhs: NodeId,
        current: &Val<'a>,
    ) -> Result<Val<'a>, String> {
        let left = self.eval(lhs, current)?;
        let Some(array) = left.as_array() else {
            return Ok(Val::Null);
        };
        let mut out = Vec::new();
        for element in array.iter() {
            self.tick(1)?;
            let value = self.eval(rhs, &element)?;
            if !value.is_null() {
                self.push(&mut out, value)?;
            }
        }
        self.array(out)
    }

    fn flatten(&mut self, inner: NodeId, current: &Val<'a>) -> Result<Val<'a>, String> {
        let value = self.eval(inner, current)?;
        let Some(array) = value.as_array() else {
            return Ok(Val::Null);
        };
        let mut out = Vec::new();
        for element in array.iter() {
            self.tick(1)?;
            match element.as_array() {
                Some(nested) => {
                    for e in nested.iter() {
                        self.tick(1)?;
                        self.push(&mut out, e)?;
                    }
                }
                None => self.push(&mut out, element.clone())?,
            }
        }
        self.array(out)
    }

    fn object_values(&mut self, inner: NodeId, current: &Val<'a>) -> Result<Val<'a>, String> {
        let value = self.eval(inner, current)?;
        match value.as_object() {
            Some(object) => self.values_of(object),
            None => Ok(Val::Null),
        }
    }

    /// The values of `object`, in key order.
    pub(super) fn values_of(&mut self, object: ObjRef<'_, 'a>) -> Result<Val<'a>, String> {
        let mut out = Vec::new();
        for (_, v) in object.iter() {
            self.tick(1)?;
            self.push(&mut out, v)?;
        }
        self.array(out)
    }

    fn comparison(
        &mut self,
        cmp: Cmp,
        lhs: NodeId,
        rhs: NodeId,
        current: &Val<'a>,
    ) -> Result<Val<'a>, String> {
        let left = self.eval(lhs, current)?;
        let right = self.eval(rhs, current)?;
        let result = match cmp {
            Cmp::Eq => self.equal(&left, &right)?,
            Cmp::Ne => !self.equal(&left, &right)?,
            _ => {
                let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) else {
                    return Ok(Val::Null);
                };
                let ordering = a.partial_cmp(&b).unwrap_or(Ordering::Less);
                match cmp {
                    Cmp::Lt => ordering == Ordering::Less,
                    Cmp::Le => ordering != Ordering::Greater,
                    Cmp::Gt => ordering == Ordering::Greater,
                    _ => ordering != Ordering::Less,
                }
            }
        };
        Ok(Val::Bool(result))
    }

    fn multi_list(&mut self, items: &[NodeId], current: &Val<'a>) -> Result<Val<'a>, String> {
        if current.is_null() {
            return Ok(Val::Null);
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let value = self.eval(*item, current)?;
            self.push(&mut out, value)?;
        }
        self.array(out)
    }

    fn multi_hash(
        &mut self,
        pairs: &'a [(String, NodeId)],
        current: &Val<'a>,
    ) -> Result<Val<'a>, String> {
        if current.is_null() {
            return Ok(Val::Null);
        }
        let mut out = BTreeMap::new();
        for (key, item) in pairs {
            let value = self.eval(*item, current)?;
            self.tick(INSERT_FUEL)?;
            if out.insert(key.as_str(), value).is_none() {
                self.alloc(ENTRY_BYTES)?;
            }
        }
        self.object(out)
    }

    /// JMESPath equality (the crate's: numbers within a relative epsilon,
    /// expression references equal only to themselves). Without recursion:
    /// the containers being compared wait on an explicit stack, at most
    /// [`MAX_VALUE_DEPTH`] deep, each element pair charged to the fuel.
    pub(super) fn equal(&mut self, a: &Val<'a>, b: &Val<'a>) -> Result<bool, String> {
        let mut open: Vec<Compare<'a>> = Vec::new();
        let mut next = Some((a.clone(), b.clone()));
        loop {
            if let Some((a, b)) = next.take() {
                self.enter_value(open.len())?;
                if !self.equal_here(a, b, &mut open)? {
                    return Ok(false);
                }
            }
            let Some(top) = open.last_mut() else {
                return Ok(true);
            };
            // the next pair of elements of the innermost containers
            next = match top {
                Compare::Arrays(a, b, i) => {
                    let pair = a
                        .as_array()
                        .zip(b.as_array())
                        .and_then(|(x, y)| x.get(*i).zip(y.get(*i)));
                    *i = i.saturating_add(1);
                    pair
                }
                Compare::JObj(entries, b) => match entries.next() {
                    Some((key, p)) => {
                        self.tick_bytes(key.len())?;
                        match b.as_object().and_then(|o| o.get(key)) {
                            Some(q) => Some((Val::from_json(p), q)),
                            None => return Ok(false),
                        }
                    }
                    None => None,
                },
                Compare::Obj(map, last, b) => {
                    let entry = match *last {
                        None => map.iter().next(),
                        Some(last) => map
                            .range::<str, _>((Bound::Excluded(last), Bound::Unbounded))
                            .next(),
                    };
                    match entry {
                        Some((key, p)) => {
                            *last = Some(*key);
                            self.tick_bytes(key.len())?;
                            match b.as_object().and_then(|o| o.get(key)) {
                                Some(q) => Some((p.clone(), q)),
                                None => return Ok(false),
                            }
                        }
                        None => None,
                    }
                }
            };
            if next.is_none() {
                open.pop();
            }
        }
    }

    /// Compares two values' own parts: scalars fully; for containers their
    /// type and size, then their elements are left to `open`.
    fn equal_here(
        &mut self,
        a: Val<'a>,
        b: Val<'a>,
        open: &mut Vec<Compare<'a>>,
    ) -> Result<bool, String> {
        if a.kind() != b.kind() {
            return Ok(false);
        }
        Ok(match (&a, &b) {
            (Val::Null, Val::Null) => true,
            (Val::Bool(x), Val::Bool(y)) => x == y,
            (Val::Num(_), Val::Num(_)) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => float_eq(x, y),
                _ => false,
            },
            (Val::Expref(x), Val::Expref(y)) => x == y,
            (Val::JArr(x), Val::JArr(y)) if std::ptr::eq(*x, *y) => true,
            (Val::JObj(x), Val::JObj(y)) if std::ptr::eq(*x, *y) => true,
            (Val::JArr(_) | Val::Arr(..), _) => {
                let same_len = a.as_array().map(ArrRef::len) == b.as_array().map(ArrRef::len);
                if same_len {
                    open.push(Compare::Arrays(a, b, 0));
                }
                same_len
            }
            (Val::JObj(_) | Val::Obj(..), _) => {
                let same_len = a.as_object().map(ObjRef::len) == b.as_object().map(ObjRef::len);
                if same_len {
                    match a {
                        Val::JObj(m) => open.push(Compare::JObj(m.iter(), b)),
                        Val::Obj(m, _) => open.push(Compare::Obj(m, None, b)),
                        _ => {}
                    }
                }
                same_len
            }
            _ => {
                let (x, y) = (
                    a.as_str().unwrap_or_default(),
                    b.as_str().unwrap_or_default(),
                );
                self.tick_bytes(x.len().min(y.len()))?;
                x == y
            }
        })
    }

    /// Charges one value visited and checks its depth.
    fn enter_value(&mut self, depth: usize) -> Result<(), String> {
        self.tick(1)?;
        if depth > MAX_VALUE_DEPTH {
            return Err(Self::value_depth_error());
        }
        Ok(())
    }

    /// Appends the compact JSON text of `value` to `out` (serde_json's own
    /// formatting for numbers and strings, keys in order), failing once `out`
    /// would pass `limit` bytes. Without recursion: the containers being
    /// written wait on an explicit stack, at most [`MAX_VALUE_DEPTH`] deep.
    pub(super) fn write_json(
        &mut self,
        value: &Val<'a>,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), String> {
        let mut open: Vec<Open<'a>> = Vec::new();
        let mut next = Some(value.clone());
        loop {
            if let Some(value) = next.take() {
                self.enter_value(open.len())?;
                match value {
                    Val::JArr(a) => {
                        out.push(b'[');
                        open.push(Open::JArr(a.iter(), true));
                    }
                    Val::Arr(a, _) => {
                        out.push(b'[');
                        open.push(Open::Arr(a, 0));
                    }
                    Val::JObj(m) => {
                        out.push(b'{');
                        open.push(Open::JObj(m.iter(), true));
                    }
                    Val::Obj(m, _) => {
                        out.push(b'{');
                        open.push(Open::Obj(m, None));
                    }
                    scalar => self.write_scalar(&scalar, out, limit)?,
                }
                if out.len() > limit {
                    return Err(self.created_error());
                }
            }
            let Some(top) = open.last_mut() else {
                return Ok(());
            };
            // the next element of the innermost open container, or its end
            let (first, key, element) = match top {
                Open::JArr(iter, first) => (
                    std::mem::replace(first, false),
                    None,
                    iter.next().map(Val::from_json),
                ),
                Open::Arr(items, i) => {
                    let element = items.get(*i).cloned();
                    let first = *i == 0;
                    *i = i.saturating_add(1);
                    (first, None, element)
                }
                Open::JObj(iter, first) => match iter.next() {
                    Some((k, v)) => (
                        std::mem::replace(first, false),
                        Some(k.as_str()),
                        Some(Val::from_json(v)),
                    ),
                    None => (false, None, None),
                },
                Open::Obj(map, last) => {
                    let entry = match *last {
                        None => map.iter().next(),
                        Some(last) => map
                            .range::<str, _>((Bound::Excluded(last), Bound::Unbounded))
                            .next(),
                    };
                    let first = last.is_none();
                    match entry {
                        Some((k, v)) => {
                            *last = Some(*k);
                            (first, Some(*k), Some(v.clone()))
                        }
                        None => (false, None, None),
                    }
                }
            };
            match element {
                Some(element) => {
                    if !first {
                        out.push(b',');
                    }
                    if let Some(key) = key {
                        self.write_str(key, out, limit)?;
                        out.push(b':');
                    }
                    next = Some(element);
                }
                None => {
                    let close = match open.pop() {
                        Some(Open::JArr(..) | Open::Arr(..)) => b']',
                        _ => b'}',
                    };
                    out.push(close);
                }
            }
        }
    }

    fn write_scalar(
        &mut self,
        value: &Val<'a>,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), String> {
        match value {
            Val::Null => out.extend_from_slice(b"null"),
            Val::Bool(true) => out.extend_from_slice(b"true"),
            Val::Bool(false) => out.extend_from_slice(b"false"),
            Val::Num(n) => {
                serde_json::to_writer(&mut *out, n).map_err(|_| "cannot format a number")?;
            }
            Val::Expref(_) => return Err(expref_has_no_json()),
            _ => self.write_str(value.as_str().unwrap_or_default(), out, limit)?,
        }
        Ok(())
    }

    /// Appends `s` as a JSON string, escaped by serde_json a piece at a time
    /// so that `out` never grows far past `limit`.
    fn write_str(&mut self, s: &str, out: &mut Vec<u8>, limit: usize) -> Result<(), String> {
        const PIECE: usize = 4096;
        self.tick_bytes(s.len())?;
        if s.len() <= PIECE {
            // at most 6 x 4 KiB past the limit before the check below
            serde_json::to_writer(&mut *out, s).map_err(|_| "cannot format a string")?;
            return if out.len() > limit {
                Err(self.created_error())
            } else {
                Ok(())
            };
        }
        let mut piece = Vec::with_capacity(PIECE.saturating_mul(2));
        let mut rest = s;
        out.push(b'"');
        while !rest.is_empty() {
            let mut cut = rest.len().min(PIECE);
            while !rest.is_char_boundary(cut) {
                cut = cut.saturating_sub(1);
            }
            let (head, tail) = rest
                .split_at_checked(cut)
                .filter(|(head, _)| !head.is_empty())
                .ok_or("cannot split a string")?;
            piece.clear();
            serde_json::to_writer(&mut piece, head).map_err(|_| "cannot format a string")?;
            // drop the quotes serde_json put around the piece
            let inner = piece
                .get(1..piece.len().saturating_sub(1))
                .unwrap_or_default();
            out.extend_from_slice(inner);
            if out.len() > limit {
                return Err(self.created_error());
            }
            rest = tail;
        }
        out.push(b'"');
        Ok(())
    }

    /// Copies `value` into an owned `serde_json::Value`, charging what it
    /// creates.
    pub(super) fn json_of(&mut self, value: &Val<'a>, depth: usize) -> Result<Value, String> {
        self.enter_value(depth)?;
        let down = depth.saturating_add(1);
        match value {
            Val::Null => Ok(Value::Null),
            Val::Bool(b) => Ok(Value::Bool(*b)),
            Val::Num(n) => Ok(Value::Number(n.clone())),
            Val::JArr(_) | Val::Arr(..) => self.json_array(value, down),
            Val::JObj(m) => self.json_object(json_entries(m), down),
            Val::Obj(m, _) => self.json_object(own_entries(m), down),
            Val::Expref(_) => Err(expref_has_no_json()),
            Val::Str(_) | Val::OwnedStr(_) => {
                let s = value.as_str().unwrap_or_default();
                self.alloc(s.len())?;
                Ok(Value::String(s.to_owned()))
            }
        }
    }

    fn json_array(&mut self, value: &Val<'a>, down: usize) -> Result<Value, String> {
        let mut out = Vec::new();
        if let Some(array) = value.as_array() {
            for i in 0..array.len() {
                self.alloc(std::mem::size_of::<Value>())?;
                let element = array.get(i).unwrap_or(Val::Null);
                out.push(self.json_of(&element, down)?);
            }
        }
        Ok(Value::Array(out))
    }

    fn json_object(
        &mut self,
        entries: impl Iterator<Item = (&'a str, Val<'a>)>,
        down: usize,
    ) -> Result<Value, String> {
        let mut out = Map::new();
        for (key, element) in entries {
            self.tick(INSERT_FUEL)?;
            self.alloc(ENTRY_BYTES.saturating_add(key.len()))?;
            out.insert(key.to_owned(), self.json_of(&element, down)?);
        }
        Ok(Value::Object(out))
    }
}

fn expref_has_no_json() -> String {
    "an expression reference (&...) has no JSON form: pass it to a function like sort_by() \
     or map()"
        .into()
}

/// The entries of a document object, in key order.
fn json_entries<'a>(m: &'a Map<String, Value>) -> impl Iterator<Item = (&'a str, Val<'a>)> {
    m.iter().map(|(k, v)| (k.as_str(), Val::from_json(v)))
}

/// The entries of a built object, in key order.
fn own_entries<'v, 'a: 'v>(
    m: &'v BTreeMap<&'a str, Val<'a>>,
) -> impl Iterator<Item = (&'a str, Val<'a>)> + 'v {
    m.iter().map(|(k, v)| (*k, v.clone()))
}

/// Containers [`Evaluator::equal`] is comparing, and where it is in them.
enum Compare<'a> {
    Arrays(Val<'a>, Val<'a>, usize),
    /// The entries of a document object still to compare, and the other
    /// object.
    JObj(serde_json::map::Iter<'a>, Val<'a>),
    /// A built object, the last key compared, and the other object.
    Obj(Rc<BTreeMap<&'a str, Val<'a>>>, Option<&'a str>, Val<'a>),
}

/// A container [`Evaluator::write_json`] is writing, and where it is in it.
enum Open<'a> {
    JArr(std::slice::Iter<'a, Value>, bool),
    Arr(Rc<Vec<Val<'a>>>, usize),
    JObj(serde_json::map::Iter<'a>, bool),
    /// A built object and the last key written (keys borrow from the
    /// program or the document, not from the map).
    Obj(Rc<BTreeMap<&'a str, Val<'a>>>, Option<&'a str>),
}

/// `array[i]`; a negative `i` counts from the end.
fn index<'a>(current: &Val<'a>, i: i32) -> Val<'a> {
    let Some(array) = current.as_array() else {
        return Val::Null;
    };
    let position = if i >= 0 {
        usize::try_from(i).ok()
    } else {
        usize::try_from(i.unsigned_abs())
            .ok()
            .and_then(|back| array.len().checked_sub(back))
    };
    position.and_then(|p| array.get(p)).unwrap_or(Val::Null)
}

/// The indices a slice selects from an array of `len` elements, computed as
/// the crate does but in 64-bit arithmetic (no overflow for any `i32`
/// bounds and step). `step` is never 0 (refused when compiling).
fn slice_indices(
    len: usize,
    start: Option<i32>,
    stop: Option<i32>,
    step: i32,
) -> impl Iterator<Item = usize> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let step = i64::from(step);
    let adjust = |endpoint: i32| -> i64 {
        let endpoint = i64::from(endpoint);
        if endpoint < 0 {
            let from_end = endpoint.saturating_add(len);
            if from_end >= 0 {
                from_end
            } else if step < 0 {
                -1
            } else {
                0
            }
        } else if endpoint < len {
            endpoint
        } else if step < 0 {
            len.saturating_sub(1)
        } else {
            len
        }
    };
    let first = match start {
        Some(s) => adjust(s),
        None if step < 0 => len.saturating_sub(1),
        None => 0,
    };
    let end = match stop {
        Some(s) => adjust(s),
        None if step < 0 => -1,
        None => len,
    };
    let mut i = first;
    std::iter::from_fn(move || {
        let inside = if step > 0 { i < end } else { i > end };
        if len == 0 || step == 0 || !inside {
            return None;
        }
        let current = i;
        i = i.saturating_add(step);
        usize::try_from(current).ok()
    })
}
