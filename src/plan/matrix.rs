//! Matrix expansion: the cartesian product of the axes in key order (first
//! key outermost), minus `exclude`, plus `include`, with stable cell ids.

use std::collections::HashMap;
use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;

use super::raw::RawMatrix;
use super::spanned::Sp;
use super::suggest::{Closeness, did_you_mean};
use crate::base::limits::{MAX_CELLS, thousands};

/// One value of a matrix axis.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum MatrixValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl MatrixValue {
    pub(crate) fn from_toml(value: &toml::Value) -> Option<MatrixValue> {
        Some(match value {
            toml::Value::Integer(i) => MatrixValue::Int(*i),
            toml::Value::Float(f) => MatrixValue::Float(*f),
            toml::Value::Boolean(b) => MatrixValue::Bool(*b),
            toml::Value::String(s) => MatrixValue::Str(s.clone()),
            _ => return None,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MatrixValue::Int(i) => Some(*i as f64),
            MatrixValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Identifies the value for duplicate checks (floats by their bits).
    fn key(&self) -> (u8, String) {
        match self {
            MatrixValue::Bool(b) => (0, b.to_string()),
            MatrixValue::Int(i) => (1, i.to_string()),
            MatrixValue::Float(x) => (2, x.to_bits().to_string()),
            MatrixValue::Str(s) => (3, s.clone()),
        }
    }

    /// The value as it appears in a cell id: only `[A-Za-z0-9.-]`.
    fn id_part(&self) -> String {
        sanitize(&self.to_string())
    }
}

impl fmt::Display for MatrixValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatrixValue::Bool(b) => write!(f, "{b}"),
            MatrixValue::Int(i) => write!(f, "{i}"),
            MatrixValue::Float(x) => write!(f, "{x}"),
            MatrixValue::Str(s) => f.write_str(s),
        }
    }
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The values of one cell, in axis order.
pub type CellValues = IndexMap<String, MatrixValue>;

pub fn cell_id(values: &CellValues) -> String {
    if values.is_empty() {
        return "default".into();
    }
    values
        .iter()
        .map(|(k, v)| format!("{}{}", sanitize(k), v.id_part()))
        .collect::<Vec<_>>()
        .join("_")
}

/// Identifies a cell by its values, for finding it among many.
fn cell_key(values: &CellValues) -> Vec<(u8, String)> {
    values.values().map(MatrixValue::key).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MatrixError {
    pub(crate) span: std::ops::Range<usize>,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

fn err(span: std::ops::Range<usize>, message: String, hint: Option<String>) -> MatrixError {
    MatrixError {
        span,
        message,
        hint,
    }
}

/// The most combinations counting or expanding a matrix may visit.
const MAX_SHAPE_WORK: u128 = 2_000_000;

/// The axes and `exclude` entries of a matrix, for counting its cells
/// without building them and for building them without visiting excluded
/// subtrees.
struct Shape<'a> {
    axes: &'a [(String, Vec<MatrixValue>)],
    /// Per exclude entry that can match: (axis index, value index) pairs,
    /// in axis order.
    excludes: Vec<Vec<(usize, usize)>>,
}

impl<'a> Shape<'a> {
    fn new(axes: &'a [(String, Vec<MatrixValue>)], excludes: &[CellValues]) -> Self {
        let excludes = excludes
            .iter()
            .filter_map(|sel| {
                let mut fixed = Vec::with_capacity(sel.len());
                for (key, value) in sel {
                    let axis = axes.iter().position(|(name, _)| name == key)?;
                    // A value the axis does not have never matches.
                    let index = axes[axis].1.iter().position(|v| v == value)?;
                    fixed.push((axis, index));
                }
                fixed.sort_unstable();
                Some(fixed)
            })
            .collect();
        Shape { axes, excludes }
    }

    fn matches(&self, e: usize, picks: &[usize]) -> bool {
        self.excludes[e]
            .iter()
            .all(|&(axis, index)| picks[axis] == index)
    }

    /// Exclude entries by the (axis, value) pair they name first (`first`)
    /// or last, so a cell is checked only against entries that can match it.
    fn index(&self, first: bool) -> HashMap<(usize, usize), Vec<usize>> {
        let mut by_pair: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (e, sel) in self.excludes.iter().enumerate() {
            let pair = if first { sel.first() } else { sel.last() };
            if let Some(&pair) = pair {
                by_pair.entry(pair).or_default().push(e);
            }
        }
        by_pair
    }

    /// An `exclude = [{}]` entry names no axis and so matches every cell.
    fn excludes_everything(&self) -> bool {
        self.excludes.iter().any(Vec::is_empty)
    }

    fn excluded_by(&self, by_first: &HashMap<(usize, usize), Vec<usize>>, picks: &[usize]) -> bool {
        picks.iter().enumerate().any(|(axis, &index)| {
            by_first
                .get(&(axis, index))
                .is_some_and(|list| list.iter().any(|&e| self.matches(e, picks)))
        })
    }

    /// Cells of the product left after `exclude`, counted by classes: on each
    /// axis, every value an `exclude` names is its own class and all others
    /// form one, so the work grows with the `exclude` entries, not the
    /// product. `None` when even that is too much work.
    fn count(&self) -> Option<u128> {
        let mut classes: Vec<Vec<(usize, u128)>> = Vec::with_capacity(self.axes.len());
        let mut work: u128 = 1;
        for (axis, (_, values)) in self.axes.iter().enumerate() {
            let mut named: Vec<usize> = self
                .excludes
                .iter()
                .flatten()
                .filter(|(a, _)| *a == axis)
                .map(|&(_, i)| i)
                .collect();
            named.sort_unstable();
            named.dedup();
            let mut axis_classes: Vec<(usize, u128)> = named.iter().map(|&i| (i, 1)).collect();
            let others = (values.len() - named.len()) as u128;
            if others > 0 {
                axis_classes.push((usize::MAX, others));
            }
            work = work.saturating_mul(axis_classes.len() as u128);
            classes.push(axis_classes);
        }
        if work > MAX_SHAPE_WORK {
            return None;
        }
        if self.excludes_everything() {
            return Some(0);
        }
        let by_first = self.index(true);
        let mut picks = vec![0usize; self.axes.len()];
        let mut cursor = vec![0usize; self.axes.len()];
        let mut total: u128 = 0;
        loop {
            let mut weight: u128 = 1;
            for (axis, &c) in cursor.iter().enumerate() {
                let (index, w) = classes[axis][c];
                picks[axis] = index;
                weight = weight.checked_mul(w)?;
            }
            if !self.excluded_by(&by_first, &picks) {
                total = total.checked_add(weight)?;
            }
            // Odometer step, last axis fastest.
            let mut axis = self.axes.len();
            loop {
                if axis == 0 {
                    return Some(total);
                }
                axis -= 1;
                cursor[axis] += 1;
                if cursor[axis] < classes[axis].len() {
                    break;
                }
                cursor[axis] = 0;
            }
        }
    }

    /// The cells left after `exclude`, first axis outermost. A subtree is
    /// skipped as soon as an `exclude` entry matches it. `None` when the walk
    /// would visit too many combinations.
    fn expand(&self) -> Option<Vec<CellValues>> {
        let mut out = Vec::new();
        if self.excludes_everything() {
            return Some(out);
        }
        let by_last = self.index(false);
        let mut picks = vec![0usize; self.axes.len()];
        let mut work: u128 = 0;
        self.walk(0, &mut picks, &by_last, &mut work, &mut out)?;
        Some(out)
    }

    fn walk(
        &self,
        axis: usize,
        picks: &mut [usize],
        by_last: &HashMap<(usize, usize), Vec<usize>>,
        work: &mut u128,
        out: &mut Vec<CellValues>,
    ) -> Option<()> {
        if axis == self.axes.len() {
            out.push(
                self.axes
                    .iter()
                    .zip(picks.iter())
                    .map(|((name, values), &i)| (name.clone(), values[i].clone()))
                    .collect(),
            );
            return Some(());
        }
        for index in 0..self.axes[axis].1.len() {
            *work += 1;
            if *work > MAX_SHAPE_WORK {
                return None;
            }
            picks[axis] = index;
            // Entries whose last named axis is this one are decided here.
            let excluded = by_last
                .get(&(axis, index))
                .is_some_and(|list| list.iter().any(|&e| self.matches(e, picks)));
            if !excluded {
                self.walk(axis + 1, picks, by_last, work, out)?;
            }
        }
        Some(())
    }

    /// Included cells that are not already cells of the product, each once.
    fn extra_includes(&self, includes: &[CellValues]) -> u128 {
        let by_first = self.index(true);
        let mut seen = std::collections::HashSet::new();
        let mut extra = 0;
        for cell in includes {
            if !seen.insert(cell_key(cell)) {
                continue;
            }
            let picks: Option<Vec<usize>> = self
                .axes
                .iter()
                .map(|(name, values)| {
                    let v = cell.get(name)?;
                    values.iter().position(|x| x == v)
                })
                .collect();
            match picks {
                Some(p) if !self.excludes_everything() && !self.excluded_by(&by_first, &p) => {}
                _ => extra += 1,
            }
        }
        extra
    }
}

/// Expands the matrix; `None` (no `[matrix]`) is one cell with no values.
pub(crate) fn expand(matrix: Option<&RawMatrix>) -> Result<Vec<CellValues>, Vec<MatrixError>> {
    let Some(matrix) = matrix else {
        return Ok(vec![CellValues::new()]);
    };
    let mut errors = Vec::new();
    let mut axes: Vec<(String, Vec<MatrixValue>)> = Vec::new();
    for ((name, values), key_span) in matrix.axes.iter().zip(&matrix.axis_spans) {
        if values.value.is_empty() {
            errors.push(err(
                key_span.start..values.span.end,
                format!("matrix axis `{name}` has no values"),
                Some("give it at least one value, e.g. `users = [100]`, or remove it".into()),
            ));
            continue;
        }
        let mut parsed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for v in &values.value {
            match MatrixValue::from_toml(&v.value) {
                Some(mv) if !seen.insert(mv.key()) => errors.push(err(
                    v.span.clone(),
                    format!("matrix axis `{name}` lists {mv} twice"),
                    Some("remove the duplicate value".into()),
                )),
                Some(mv) => parsed.push(mv),
                None => errors.push(err(
                    v.span.clone(),
                    format!(
                        "matrix axis `{name}` holds a {}; axis values are numbers, strings or booleans",
                        v.value.type_str()
                    ),
                    None,
                )),
            }
        }
        axes.push((name.clone(), parsed));
    }
    let axis_names: Vec<&str> = matrix.axes.keys().map(String::as_str).collect();

    let selectors = |list: &[Sp<IndexMap<String, Sp<toml::Value>>>],
                     what: &str,
                     errors: &mut Vec<MatrixError>|
     -> Vec<(CellValues, std::ops::Range<usize>, bool)> {
        let mut out = Vec::new();
        for entry in list {
            let mut values = CellValues::new();
            let mut complete = true;
            for (key, value) in &entry.value {
                if !axis_names.contains(&key.as_str()) {
                    complete = false;
                    let hint = did_you_mean(key, axis_names.iter().copied(), Closeness::Similar)
                        .unwrap_or_else(|| format!("the axes are: {}", axis_names.join(", ")));
                    errors.push(err(
                        value.span.clone(),
                        format!("`{what}` names `{key}`, which is not a matrix axis"),
                        Some(hint),
                    ));
                    continue;
                }
                match MatrixValue::from_toml(&value.value) {
                    Some(mv) => {
                        values.insert(key.clone(), mv);
                    }
                    None => errors.push(err(
                        value.span.clone(),
                        format!("`{what}` values are numbers, strings or booleans"),
                        None,
                    )),
                }
            }
            out.push((values, entry.span.clone(), complete));
        }
        out
    };
    let excludes = selectors(&matrix.exclude, "exclude", &mut errors);
    let includes = selectors(&matrix.include, "include", &mut errors);
    for (values, span, complete) in &includes {
        let missing: Vec<&str> = axis_names
            .iter()
            .copied()
            .filter(|a| !values.contains_key(*a))
            .collect();
        // An unknown key is already reported; it is most likely the missing axis misspelt.
        if !missing.is_empty() && *complete {
            errors.push(err(
                span.clone(),
                format!(
                    "this `include` cell gives no value for {}",
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some("an included cell names a value for every axis".into()),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let excludes: Vec<CellValues> = excludes.into_iter().map(|(v, _, _)| v).collect();
    let includes: Vec<CellValues> = includes
        .into_iter()
        .map(|(values, _, _)| {
            axis_names
                .iter()
                .filter_map(|a| values.get(*a).map(|v| (a.to_string(), v.clone())))
                .collect()
        })
        .collect();
    let shape = Shape::new(&axes, &excludes);
    let matrix_span = matrix.axis_spans.first().cloned().unwrap_or(0..0);
    let count = shape
        .count()
        .and_then(|base| base.checked_add(shape.extra_includes(&includes)));
    match count {
        Some(n) if n <= MAX_CELLS => {}
        Some(n) => {
            return Err(vec![err(
                matrix_span,
                format!(
                    "matrix has {} cells; the limit is {}",
                    thousands(n),
                    thousands(MAX_CELLS)
                ),
                Some("use fewer values per axis, or leave combinations out with `exclude`; split a larger study into several plans".into()),
            )]);
        }
        None => {
            return Err(vec![err(
                matrix_span,
                format!(
                    "matrix has more than {} cells before `exclude` (too many to count its cells); the limit is {}",
                    thousands(MAX_SHAPE_WORK),
                    thousands(MAX_CELLS)
                ),
                Some("use fewer values per axis; split a larger study into several plans".into()),
            )]);
        }
    }
    let Some(mut cells) = shape.expand() else {
        return Err(vec![err(
            matrix_span,
            format!(
                "the matrix's `exclude` entries leave few cells of a product too large to walk (more than {} combinations)",
                thousands(MAX_SHAPE_WORK)
            ),
            Some("list the cells you want with `include` and fewer axis values".into()),
        )]);
    };
    let mut present: std::collections::HashSet<_> = cells.iter().map(cell_key).collect();
    for ordered in includes {
        if present.insert(cell_key(&ordered)) {
            cells.push(ordered);
        }
    }
    if cells.is_empty() {
        let span = matrix
            .exclude
            .first()
            .map(|e| e.span.clone())
            .unwrap_or(0..0);
        return Err(vec![err(
            span,
            "the matrix has no cells left after `exclude`".into(),
            Some("narrow the exclude entries".into()),
        )]);
    }
    let mut seen = HashMap::new();
    for (i, c) in cells.iter().enumerate() {
        if let Some(j) = seen.insert(cell_id(c), i) {
            return Err(vec![err(
                matrix.axis_spans.first().cloned().unwrap_or(0..0),
                format!(
                    "cells {} and {} get the same id `{}`",
                    j + 1,
                    i + 1,
                    cell_id(c)
                ),
                Some("matrix string values that differ only in punctuation collide in cell ids; make them differ in letters or digits".into()),
            )]);
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(text: &str) -> RawMatrix {
        let value: toml::Spanned<toml::de::DeValue<'_>> = toml::de::DeValue::parse(text).unwrap();
        serde::Deserialize::deserialize(toml::de::ValueDeserializer::from(value)).unwrap()
    }

    fn ids(cells: &[CellValues]) -> Vec<String> {
        cells.iter().map(cell_id).collect()
    }

    #[test]
    fn first_key_is_outermost() {
        let m = matrix("{ replicas = [1, 2], users = [10, 20] }");
        assert_eq!(
            ids(&expand(Some(&m)).unwrap()),
            [
                "replicas1_users10",
                "replicas1_users20",
                "replicas2_users10",
                "replicas2_users20"
            ]
        );
    }

    #[test]
    fn exclude_removes_matching_cells_and_include_appends() {
        let m = matrix(
            "{ replicas = [1, 2], users = [10, 20], exclude = [{ users = 10 }], include = [{ users = 80, replicas = 8 }, { replicas = 1, users = 20 }] }",
        );
        assert_eq!(
            ids(&expand(Some(&m)).unwrap()),
            [
                "replicas1_users20",
                "replicas2_users20",
                "replicas8_users80"
            ]
        );
    }

    #[test]
    fn no_matrix_is_one_cell() {
        assert_eq!(ids(&expand(None).unwrap()), ["default"]);
    }

    #[test]
    fn string_and_float_values_make_path_safe_ids() {
        let m = matrix(r#"{ model = ["bert/base", "gpt 2"], ratio = [0.5] }"#);
        assert_eq!(
            ids(&expand(Some(&m)).unwrap()),
            ["modelbert-base_ratio0.5", "modelgpt-2_ratio0.5"]
        );
    }

    #[test]
    fn colliding_ids_are_an_error() {
        let m = matrix(r#"{ model = ["a/b", "a b"] }"#);
        let errors = expand(Some(&m)).unwrap_err();
        assert!(
            errors[0].message.contains("same id `modela-b`"),
            "{errors:?}"
        );
    }

    #[test]
    fn cells_are_counted_exactly_without_building_them() {
        // Overlapping excludes, an exclude naming a value no axis has, and
        // includes inside and outside the product.
        let m = matrix(
            "{ a = [1, 2, 3, 4], b = [1, 2, 3], c = [true, false], exclude = [{ a = 1 }, { a = 1, b = 2 }, { b = 3, c = true }, { a = 9 }], include = [{ a = 1, b = 1, c = true }, { a = 2, b = 1, c = true }, { a = 7, b = 7, c = false }, { a = 7, b = 7, c = false }] }",
        );
        let expanded = expand(Some(&m)).unwrap();
        // 24 - 6 (a = 1) - 3 (b = 3, c = true, a != 1) + 2 new includes.
        assert_eq!(expanded.len(), 17);
        let axes: Vec<(String, Vec<MatrixValue>)> = m
            .axes
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.value
                        .iter()
                        .filter_map(|x| MatrixValue::from_toml(&x.value))
                        .collect(),
                )
            })
            .collect();
        let excludes: Vec<CellValues> = m
            .exclude
            .iter()
            .map(|e| {
                e.value
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), MatrixValue::from_toml(&v.value)?)))
                    .collect()
            })
            .collect();
        let shape = Shape::new(&axes, &excludes);
        assert_eq!(shape.count(), Some(15));
        assert_eq!(shape.expand().map(|c| c.len()), Some(15));
    }

    #[test]
    fn a_matrix_over_the_limit_names_its_count() {
        let values: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let axis = format!("[{}]", values.join(", "));
        let m = matrix(&format!(
            "{{ a = {axis}, b = {axis}, c = {axis}, d = {axis} }}"
        ));
        let errors = expand(Some(&m)).unwrap_err();
        assert_eq!(
            errors[0].message,
            "matrix has 2,560,000 cells; the limit is 10,000"
        );
    }

    #[test]
    fn excludes_can_bring_a_large_product_under_the_limit() {
        let values: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let axis = format!("[{}]", values.join(", "));
        // 200 * 200 cells, of which only a = 0 is kept: 200 cells.
        let excludes: Vec<String> = (1..200).map(|i| format!("{{ a = {i} }}")).collect();
        let m = matrix(&format!(
            "{{ a = {axis}, b = {axis}, exclude = [{}] }}",
            excludes.join(", ")
        ));
        assert_eq!(expand(Some(&m)).unwrap().len(), 200);
    }
}
