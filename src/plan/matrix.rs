//! Matrix expansion: the cartesian product of the axes in key order (first
//! key outermost), minus `exclude`, plus `include`, with stable cell ids.

use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;

use super::raw::RawMatrix;
use super::spanned::Sp;
use super::suggest::{Closeness, did_you_mean};

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
        for v in &values.value {
            match MatrixValue::from_toml(&v.value) {
                Some(mv) if parsed.contains(&mv) => errors.push(err(
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

    let mut cells: Vec<CellValues> = vec![CellValues::new()];
    for (name, values) in &axes {
        let mut next = Vec::with_capacity(cells.len() * values.len());
        for cell in &cells {
            for v in values {
                let mut c = cell.clone();
                c.insert(name.clone(), v.clone());
                next.push(c);
            }
        }
        cells = next;
    }
    cells.retain(|cell| {
        !excludes
            .iter()
            .any(|(sel, _, _)| sel.iter().all(|(k, v)| cell.get(k) == Some(v)))
    });
    for (values, _, _) in includes {
        let ordered: CellValues = axis_names
            .iter()
            .filter_map(|a| values.get(*a).map(|v| (a.to_string(), v.clone())))
            .collect();
        if !cells.contains(&ordered) {
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
    let mut seen = std::collections::HashMap::new();
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
}
