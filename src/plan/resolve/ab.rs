//! `[analysis] ab`: the compared axis must be one of the matrix's, with a
//! baseline and at least one variant.

use super::resolver::{Resolver, list_or_none};
use crate::plan::matrix::MatrixValue;
use crate::plan::model::AbAxis;
use crate::plan::raw::{CellOrder, RawPlan};
use crate::plan::suggest::{Closeness, did_you_mean};

pub(super) fn resolve(r: &mut Resolver<'_>, raw: &RawPlan) -> Option<AbAxis> {
    let ab = raw.analysis.ab.as_ref()?;
    let name = ab.value.as_str();
    let Some(values) = raw.matrix.as_ref().and_then(|m| m.axes.get(name)) else {
        let hint = did_you_mean(name, r.axes.iter().map(String::as_str), Closeness::Similar)
            .unwrap_or_else(|| {
                format!(
                    "name a `[matrix]` axis (the plan has: {}), e.g. `version = [\"v1\", \"v2\"]` with `ab = \"version\"`",
                    list_or_none(&r.axes)
                )
            });
        r.error(
            ab.span.clone(),
            format!("`analysis.ab` names `{name}`, which is not a matrix axis"),
            Some(hint),
        );
        return None;
    };
    if values.value.len() < 2 {
        r.error(
            ab.span.clone(),
            format!(
                "`analysis.ab = \"{name}\"` needs a baseline and a variant, but `{name}` has {} value{}",
                values.value.len(),
                if values.value.len() == 1 { "" } else { "s" }
            ),
            Some(format!(
                "give `{name}` two or more values; the first is the baseline"
            )),
        );
        return None;
    }
    if raw.search.is_some() {
        r.error(
            ab.span.clone(),
            "`analysis.ab` compares measured cells, and a `[search]` measures probes".to_string(),
            Some("remove `ab`, or run the comparison in a plan without `[search]`".into()),
        );
        return None;
    }
    let baseline = MatrixValue::from_toml(&values.value[0].value)?;
    Some(AbAxis {
        axis: name.to_string(),
        baseline,
    })
}

/// `[cell] order`: interleaving alternates the `ab` axis' values, so it
/// needs one.
pub(super) fn order(r: &mut Resolver<'_>, raw: &RawPlan) -> CellOrder {
    let Some(order) = &raw.cell.order else {
        return CellOrder::Sequential;
    };
    if order.value == CellOrder::Interleave && raw.analysis.ab.is_none() {
        let hint = match r.axes.first() {
            Some(first) => format!(
                "add `[analysis] ab = \"{first}\"` naming the axis whose values alternate (the plan has: {}), or remove `order`",
                r.axes.join(", ")
            ),
            None => "give `[matrix]` an axis of the variants, e.g. `version = [\"v1\", \"v2\"]`, and `[analysis] ab = \"version\"`, or remove `order`".to_string(),
        };
        r.error(
            order.span.clone(),
            "`cell.order = \"interleave\"` alternates the values of the `[analysis] ab` axis, and the plan has no `ab`".to_string(),
            Some(hint),
        );
        return CellOrder::Sequential;
    }
    order.value
}
