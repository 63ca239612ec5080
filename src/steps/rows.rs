//! Renders a request's rows before its cell's load starts: each row's body
//! (and path, when the path names `row`) through the plan's templates, into
//! one [`RowSet`] every worker shares.

use std::sync::Arc;

use minijinja::Value;

use crate::base::limits::TEMPLATE_OUTPUT;
use crate::engine::data::{RowSet, RowSetBuilder};
use crate::plan::data::{DataError, RequestData, for_each_row};
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
    let mut rows = RowSetBuilder::new(per_row_path);
    let result = for_each_row::<Failed>(&data.source, |line, row| {
        let ctx = minijinja::context! { row => Value::from(minijinja::value::Serde(&row)), ..ctx.clone() };
        let bad = |what: &str, e: String| {
            Failed::Row(format!("{what} of `{name}`, row at line {line}: {e}"))
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
        rows.push(&path, body.as_bytes())
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
