//! Renders a request's rows before its cell's load starts: each row's body
//! (and path and headers, those that name `row`) through the plan's
//! templates, into one [`RowSet`] every worker shares.

use std::sync::Arc;

use minijinja::Value;

use crate::base::limits::TEMPLATE_OUTPUT;
use crate::engine::data::{RowSet, RowSetBuilder};
use crate::plan::data::{DataError, DataSource, RequestData, for_each_row};
use crate::plan::model::Request;
use crate::plan::template::Templates;

use super::StepError;

enum Failed {
    Data(DataError),
    Row(String),
}

impl From<DataError> for Failed {
    fn from(e: DataError) -> Self {
        Failed::Data(e)
    }
}

pub(super) fn render_rows(
    templates: &Templates,
    request: &Request,
    data: &RequestData,
    ctx: &Value,
) -> Result<Arc<RowSet>, StepError> {
    let env = templates.values();
    let name = &request.name;
    fn compile<'s>(
        env: &'s minijinja::Environment<'static>,
        what: &str,
        name: &str,
        source: &'s str,
    ) -> Result<minijinja::Template<'s, 's>, StepError> {
        env.template_from_str(source)
            .map_err(|e| StepError::failed(format!("{what} of `{name}`: {e}")))
    }
    let per_row_path = request.row_path.is_some();
    let path = request
        .row_path
        .as_deref()
        .map(|p| compile(env, "path", name, p))
        .transpose()?;
    let body = request
        .body
        .as_deref()
        .map(|b| compile(env, "body", name, b))
        .transpose()?;
    let headers = request
        .row_headers
        .iter()
        .map(|(h, t)| compile(env, &format!("header `{h}`"), name, t))
        .collect::<Result<Vec<_>, _>>()?;
    let header_names = request.row_headers.iter().map(|(h, _)| h.clone()).collect();
    let file = match &data.source {
        DataSource::File(p) => p.display().to_string(),
        DataSource::Synthetic(_) => "the synthetic rows".into(),
    };
    let mut values = Vec::with_capacity(headers.len());
    let mut rows = RowSetBuilder::new(per_row_path, header_names);
    let result = for_each_row::<Failed>(&data.source, |line, row| {
        let ctx = minijinja::context! { row => Value::from(minijinja::value::Serde(&row)), ..ctx.clone() };
        let bad = |what: &str, e: String| {
            Failed::Row(format!("{what} of `{name}`, line {line} of {file}: {e}"))
        };
        let path = match &path {
            Some(t) => {
                let p = t.render(&ctx).map_err(|e| bad("path", e.to_string()))?;
                if !p.starts_with('/') || hyper::Uri::try_from(p.as_str()).is_err() {
                    return Err(bad(
                        "path",
                        format!("{p:?} is not a request path starting with '/'"),
                    ));
                }
                p
            }
            None => String::new(),
        };
        let body = match &body {
            Some(t) => t.render(&ctx).map_err(|e| bad("body", e.to_string()))?,
            None => String::new(),
        };
        if body.len() > TEMPLATE_OUTPUT {
            return Err(bad(
                "body",
                format!("{} bytes, beyond {TEMPLATE_OUTPUT}", body.len()),
            ));
        }
        values.clear();
        for ((h, _), t) in request.row_headers.iter().zip(&headers) {
            let what = format!("header `{h}`");
            let v = t.render(&ctx).map_err(|e| bad(&what, e.to_string()))?;
            // The value is not shown: it may hold a secret.
            if let Some(problem) = header_value_problem(&v) {
                return Err(bad(&what, problem.into()));
            }
            values.push(v.trim().to_owned());
        }
        rows.push(&path, &values, body.as_bytes())
            .map_err(|e| Failed::Row(e.to_string()))?;
        if let Some(clock) = &data.trace {
            let t = crate::plan::data::timestamp(&row).unwrap_or(clock.first_ms);
            rows.due(clock.offset(t));
        }
        Ok(())
    });
    match result {
        Ok(_) => Ok(Arc::new(rows.finish(data.order, data.seed))),
        Err(Failed::Data(e)) => Err(StepError::failed(format!("{e} ({})", e.hint()))),
        Err(Failed::Row(m)) => Err(StepError::failed(m)),
    }
}

/// Why a rendered value cannot be sent as a header value, if it cannot.
fn header_value_problem(v: &str) -> Option<&'static str> {
    if v.contains(['\r', '\n']) {
        return Some(
            "the value holds a line break (CR or LF), which would end the header early; \
             strip it in the template (e.g. `{{ row.x | replace(\"\\n\", \" \") }}`) or fix the row",
        );
    }
    if hyper::header::HeaderValue::from_str(v.trim()).is_err() {
        return Some(
            "the value holds a control character, which a header value cannot carry; fix the row",
        );
    }
    if v.len() > TEMPLATE_OUTPUT {
        return Some("the value is longer than a rendered template may be");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::header_value_problem;

    #[test]
    fn header_values_that_would_break_the_head_are_refused() {
        assert!(header_value_problem("Bearer abc").is_none());
        assert!(header_value_problem("caf\u{e9}").is_none());
        assert!(
            header_value_problem("a\r\nx-injected: 1")
                .unwrap()
                .contains("CR or LF")
        );
        assert!(header_value_problem("a\nb").unwrap().contains("CR or LF"));
        assert!(header_value_problem("a\u{0}b").unwrap().contains("control"));
    }
}
