//! The 26 built-in functions of the JMESPath specification, with the
//! `jmespath` crate's results and the specification's type errors. Errors
//! name types and argument positions, never values.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Number;

use super::eval::{
    ArrRef, ENTRY_BYTES, Evaluator, INSERT_FUEL, Kind, ObjRef, VAL_BYTES, Val, order,
};
use super::ir::{Func, NodeId};

/// Calls `func` on its evaluated `args` (their count was checked when the
/// expression was compiled). One function per built-in keeps this frame
/// small: it is on the stack at every level of nested calls.
pub(super) fn call<'a>(
    ev: &mut Evaluator<'a>,
    func: Func,
    args: &[Val<'a>],
) -> Result<Val<'a>, String> {
    let args = Args { func, args };
    match func {
        Func::Abs => abs(ev, &args),
        Func::Ceil => ceil(ev, &args),
        Func::Floor => floor(ev, &args),
        Func::Avg => avg(ev, &args),
        Func::Sum => sum(ev, &args),
        Func::Contains => contains(ev, &args),
        Func::StartsWith | Func::EndsWith => affix(ev, &args),
        Func::Join => join(ev, &args),
        Func::Keys => keys(ev, &args),
        Func::Values => values(ev, &args),
        Func::Length => length(ev, &args),
        Func::Map => map(ev, &args),
        Func::Max | Func::Min => extreme(ev, &args),
        Func::MaxBy | Func::MinBy => extreme_by(ev, &args),
        Func::Merge => merge(ev, &args),
        Func::NotNull => not_null(ev, &args),
        Func::Reverse => reverse(ev, &args),
        Func::Sort => sort(ev, &args),
        Func::SortBy => sort_by(ev, &args),
        Func::ToArray => to_array(ev, &args),
        Func::ToNumber => to_number(ev, &args),
        Func::ToString => to_string(ev, &args),
        Func::Type => type_of(ev, &args),
    }
}

fn abs<'a>(_ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    float(args.func, args.number(0)?.abs())
}

fn ceil<'a>(_ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    float(args.func, args.number(0)?.ceil())
}

fn floor<'a>(_ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    float(args.func, args.number(0)?.floor())
}

fn avg<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let func = args.func;
    let values = args.typed_array(ev, 0, &[Kind::Number])?;
    if values.len() == 0 {
        return Ok(Val::Null);
    }
    let sum = add_up(ev, values)?;
    // as the crate does: the sum divided by the count as a float
    let count = values.len() as f64;
    float(func, sum / count)
}

fn sum<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let func = args.func;
    let values = args.typed_array(ev, 0, &[Kind::Number])?;
    float(func, add_up(ev, values)?)
}

fn contains<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let needle = args.get(1)?;
    match args.get(0)? {
        haystack @ (Val::Str(_) | Val::OwnedStr(_)) => {
            let haystack = haystack.as_str().unwrap_or_default();
            Ok(Val::Bool(match needle.as_str() {
                Some(n) => {
                    ev.tick_bytes(haystack.len().saturating_add(n.len()))?;
                    haystack.contains(n)
                }
                None => false,
            }))
        }
        other => {
            let array = other
                .as_array()
                .ok_or_else(|| args.error(0, "an array or a string", other))?;
            for element in array.iter() {
                if ev.equal(&element, needle)? {
                    return Ok(Val::Bool(true));
                }
            }
            Ok(Val::Bool(false))
        }
    }
}

fn affix<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let func = args.func;
    let subject = args.string(0)?;
    let affix = args.string(1)?;
    ev.tick_bytes(affix.len())?;
    Ok(Val::Bool(if func == Func::StartsWith {
        subject.starts_with(affix)
    } else {
        subject.ends_with(affix)
    }))
}

fn join<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let glue = args.string(0)?;
    let values = args.typed_array(ev, 1, &[Kind::String])?;
    let mut total: usize = 0;
    for (i, value) in values.iter().enumerate() {
        let part = value.as_str().unwrap_or_default().len();
        let sep = if i > 0 { glue.len() } else { 0 };
        total = total.saturating_add(part).saturating_add(sep);
    }
    if total > ev.room() {
        return Err(ev.created_error());
    }
    let mut joined = String::with_capacity(total);
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            joined.push_str(glue);
        }
        joined.push_str(value.as_str().unwrap_or_default());
    }
    ev.string(&joined)
}

fn keys<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let object = args.object(0)?;
    let mut out = Vec::new();
    for (key, _) in object.iter() {
        ev.tick(1)?;
        ev.push(&mut out, Val::Str(key))?;
    }
    ev.array(out)
}

fn values<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let object = args.object(0)?;
    ev.values_of(object)
}

fn length<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let value = args.get(0)?;
    let length = if let Some(s) = value.as_str() {
        ev.tick_bytes(s.len())?;
        s.chars().count()
    } else if let Some(a) = value.as_array() {
        a.len()
    } else if let Some(o) = value.as_object() {
        o.len()
    } else {
        return Err(args.error(0, "a string, an array or an object", value));
    };
    Ok(Val::Num(Number::from(length)))
}

fn map<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let expr = args.expref(0)?;
    let values = args.array(1)?;
    let mut out = Vec::new();
    for value in values.iter() {
        ev.tick(1)?;
        let mapped = ev.eval(expr, &value)?;
        ev.push(&mut out, mapped)?;
    }
    ev.array(out)
}

fn extreme<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let func = args.func;
    let values = args.typed_array(ev, 0, &[Kind::Number, Kind::String])?;
    let mut best: Option<Val<'a>> = None;
    for value in values.iter() {
        ev.tick(1)?;
        best = Some(match best {
            None => value,
            Some(current) => {
                let ordering = order(&current, &value);
                // std::cmp::max keeps the later of equals, min the earlier
                let keep = if func == Func::Max {
                    ordering == Ordering::Greater
                } else {
                    ordering != Ordering::Greater
                };
                if keep { current } else { value }
            }
        });
    }
    Ok(best.unwrap_or(Val::Null))
}

fn extreme_by<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let func = args.func;
    let values = args.array(0)?;
    let expr = args.expref(1)?;
    let mut best: Option<(Val<'a>, Val<'a>)> = None;
    let mut key_kind = None;
    for (i, value) in values.iter().enumerate() {
        ev.tick(1)?;
        let key = ev.eval(expr, &value)?;
        check_key(func, &mut key_kind, &key, i)?;
        let better = match &best {
            None => true,
            Some((_, best_key)) => {
                let wanted = if func == Func::MaxBy {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                order(&key, best_key) == wanted
            }
        };
        if better {
            best = Some((value, key));
        }
    }
    Ok(best.map_or(Val::Null, |(value, _)| value))
}

fn merge<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let mut merged: BTreeMap<&'a str, Val<'a>> = BTreeMap::new();
    for position in 0..args.args.len() {
        let object = args.object(position)?;
        for (key, value) in object.iter() {
            ev.tick(INSERT_FUEL)?;
            if merged.insert(key, value).is_none() {
                ev.alloc(ENTRY_BYTES)?;
            }
        }
    }
    ev.object(merged)
}

fn not_null<'a>(_ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    Ok(args
        .args
        .iter()
        .find(|v| !v.is_null())
        .cloned()
        .unwrap_or(Val::Null))
}

fn reverse<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let value = args.get(0)?;
    if let Some(s) = value.as_str() {
        ev.tick_bytes(s.len())?;
        if s.len() > ev.room() {
            return Err(ev.created_error());
        }
        let reversed: String = s.chars().rev().collect();
        ev.string(&reversed)
    } else if let Some(array) = value.as_array() {
        let mut out = Vec::with_capacity(
            array
                .len()
                .min(ev.room().checked_div(VAL_BYTES).unwrap_or(0)),
        );
        for element in array.iter() {
            ev.tick(1)?;
            ev.push(&mut out, element)?;
        }
        out.reverse();
        ev.array(out)
    } else {
        Err(args.error(0, "an array or a string", value))
    }
}

fn sort<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let values = args.typed_array(ev, 0, &[Kind::Number, Kind::String])?;
    let mut items = Vec::new();
    for value in values.iter() {
        ev.push(&mut items, value)?;
    }
    sort_charged(ev, &mut items, |v| v)?;
    ev.array(items)
}

fn sort_by<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let func = args.func;
    let values = args.array(0)?;
    let expr = args.expref(1)?;
    let mut keyed = Vec::new();
    let mut key_kind = None;
    for (i, value) in values.iter().enumerate() {
        ev.tick(1)?;
        let key = ev.eval(expr, &value)?;
        check_key(func, &mut key_kind, &key, i)?;
        ev.alloc(VAL_BYTES.saturating_mul(2))?;
        keyed.push((key, value));
    }
    sort_charged(ev, &mut keyed, |(key, _)| key)?;
    ev.array(keyed.into_iter().map(|(_, value)| value).collect())
}

fn to_array<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let value = args.get(0)?;
    if value.as_array().is_some() {
        Ok(value.clone())
    } else {
        let mut out = Vec::with_capacity(1);
        ev.push(&mut out, value.clone())?;
        ev.array(out)
    }
}

fn to_number<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let value = args.get(0)?;
    Ok(match value {
        Val::Num(_) => value.clone(),
        Val::Str(_) | Val::OwnedStr(_) => {
            let s = value.as_str().unwrap_or_default();
            ev.tick_bytes(s.len())?;
            serde_json::from_str::<Number>(s).map_or(Val::Null, Val::Num)
        }
        _ => Val::Null,
    })
}

fn to_string<'a>(ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    let value = args.get(0)?;
    match value {
        Val::Str(_) | Val::OwnedStr(_) => Ok(value.clone()),
        Val::Expref(_) => Err(args.error(
            0,
            "an object, array, boolean, number, string or null",
            value,
        )),
        _ => {
            let mut text = Vec::new();
            let room = ev.room();
            ev.write_json(value, &mut text, room)?;
            let text = String::from_utf8(text).map_err(|_| "JSON text is not UTF-8")?;
            ev.string(&text)
        }
    }
}

fn type_of<'a>(_ev: &mut Evaluator<'a>, args: &Args<'_, 'a>) -> Result<Val<'a>, String> {
    Ok(Val::Str(args.get(0)?.kind().name()))
}

/// The arguments of one call, with typed accessors that fail with the
/// specification's invalid-type error.
struct Args<'v, 'a> {
    func: Func,
    args: &'v [Val<'a>],
}

impl<'v, 'a> Args<'v, 'a> {
    fn get(&self, position: usize) -> Result<&'v Val<'a>, String> {
        self.args.get(position).ok_or_else(|| {
            format!(
                "{}() is missing argument {}",
                self.func.name(),
                position.saturating_add(1)
            )
        })
    }

    fn error(&self, position: usize, expected: &str, got: &Val<'_>) -> String {
        format!(
            "{}() argument {} must be {expected}; it is {}",
            self.func.name(),
            position.saturating_add(1),
            got.kind().described()
        )
    }

    fn number(&self, position: usize) -> Result<f64, String> {
        let value = self.get(position)?;
        value
            .as_f64()
            .ok_or_else(|| self.error(position, "a number", value))
    }

    fn string(&self, position: usize) -> Result<&'v str, String> {
        let value = self.get(position)?;
        value
            .as_str()
            .ok_or_else(|| self.error(position, "a string", value))
    }

    fn array(&self, position: usize) -> Result<ArrRef<'v, 'a>, String> {
        let value = self.get(position)?;
        value
            .as_array()
            .ok_or_else(|| self.error(position, "an array", value))
    }

    fn object(&self, position: usize) -> Result<ObjRef<'v, 'a>, String> {
        let value = self.get(position)?;
        value
            .as_object()
            .ok_or_else(|| self.error(position, "an object", value))
    }

    fn expref(&self, position: usize) -> Result<NodeId, String> {
        match self.get(position)? {
            Val::Expref(id) => Ok(*id),
            other => Err(self.error(position, "an expression reference (&...)", other)),
        }
    }

    /// An array whose elements are all of one of the `kinds` (an empty array
    /// passes).
    fn typed_array(
        &self,
        ev: &mut Evaluator<'a>,
        position: usize,
        kinds: &[Kind],
    ) -> Result<ArrRef<'v, 'a>, String> {
        let expected = match kinds {
            [Kind::Number] => "an array of numbers",
            [Kind::String] => "an array of strings",
            _ => "an array of numbers or an array of strings",
        };
        let value = self.get(position)?;
        let array = value
            .as_array()
            .ok_or_else(|| self.error(position, expected, value))?;
        let mut first = None;
        for element in array.iter() {
            ev.tick(1)?;
            let kind = element.kind();
            let fits = match first {
                None => kinds.contains(&kind),
                Some(first) => kind == first,
            };
            if !fits {
                return Err(format!(
                    "{}() argument {} must be {expected}; it is an array holding {}{}",
                    self.func.name(),
                    position.saturating_add(1),
                    kind.described(),
                    first.map_or(String::new(), |f| format!(" and {}", f.described())),
                ));
            }
            first = Some(kind);
        }
        Ok(array)
    }
}

fn float<'a>(func: Func, x: f64) -> Result<Val<'a>, String> {
    Number::from_f64(x).map(Val::Num).ok_or_else(|| {
        format!(
            "{}() gives a result that is not a finite number",
            func.name()
        )
    })
}

/// The sum of an array already checked to hold only numbers, added in order
/// as the crate does.
fn add_up(ev: &mut Evaluator<'_>, values: ArrRef<'_, '_>) -> Result<f64, String> {
    let mut total = 0.0;
    for value in values.iter() {
        ev.tick(1)?;
        total += value.as_f64().unwrap_or(0.0);
    }
    Ok(total)
}

/// Checks a key given by the expression of sort_by, max_by or min_by: all
/// numbers or all strings.
fn check_key(
    func: Func,
    kind: &mut Option<Kind>,
    key: &Val<'_>,
    element: usize,
) -> Result<(), String> {
    let got = key.kind();
    let fits = match *kind {
        None => matches!(got, Kind::Number | Kind::String),
        Some(first) => got == first,
    };
    if !fits {
        return Err(format!(
            "the expression given to {}() must give only numbers or only strings; for element \
             {element} of the array it gives {}",
            func.name(),
            got.described()
        ));
    }
    *kind = Some(got);
    Ok(())
}

/// A stable sort by `key` (the crate's order), each comparison charged to
/// the fuel budget. Once the fuel runs out the remaining comparisons cost
/// nothing and the sort fails.
fn sort_charged<'a, T>(
    ev: &mut Evaluator<'a>,
    items: &mut [T],
    key: impl Fn(&T) -> &Val<'a>,
) -> Result<(), String> {
    let mut failed: Option<String> = None;
    items.sort_by(|a, b| {
        if failed.is_some() {
            return Ordering::Equal;
        }
        let (a, b) = (key(a), key(b));
        let bytes = match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.len().min(y.len()),
            _ => 0,
        };
        if let Err(e) = ev.tick(1).and_then(|()| ev.tick_bytes(bytes)) {
            failed = Some(e);
            return Ordering::Equal;
        }
        order(a, b)
    });
    failed.map_or(Ok(()), Err)
}
