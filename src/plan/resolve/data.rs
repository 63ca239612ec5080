//! A request's `data`, `synthetic` and `order`: the rows `row.*` reads,
//! checked against every field the request's templates name.

use std::collections::BTreeSet;
use std::ops::Range;

use minijinja::Value;

use super::resolver::Resolver;
use crate::base::request::RowOrder;
use crate::plan::data::{
    DataError, DataSource, Lengths, MAX_SYNTHETIC_ROWS, RequestData, Synthetic, Trace, TraceClock,
    for_each_row, row_fields, scan_trace,
};
use crate::plan::data_raw::LengthsSection;
use crate::plan::raw::RawPlan;
use crate::plan::raw::RequestSection;
use crate::plan::spanned::{Scalar, Text};

/// The request's rows (none without `data` or `synthetic`) and the context
/// its path, headers and body render in (with the first row as `row`).
pub(super) struct Resolved {
    pub(super) data: Option<RequestData>,
    pub(super) ctx: Option<Value>,
    /// The path template, when it names `row`: rendered per row.
    pub(super) row_path: Option<String>,
    /// Name and template of each header that names `row`: rendered per row.
    pub(super) row_headers: Vec<(String, String)>,
}

fn lengths(r: &mut Resolver<'_>, l: &LengthsSection, what: &str, ctx: &Value) -> Option<Lengths> {
    let mean = r.typed(&l.mean, &format!("{what}.mean"), ctx)?.0;
    let stddev = match &l.stddev {
        Some(s) => r.typed(s, &format!("{what}.stddev"), ctx)?.0,
        None => 0.0,
    };
    let min = match &l.min {
        Some(m) => r.typed(m, &format!("{what}.min"), ctx)?.0,
        None => 1,
    };
    let max = match &l.max {
        Some(m) => r.typed(m, &format!("{what}.max"), ctx)?.0,
        None => u64::MAX,
    };
    if min > max {
        let span = l
            .min
            .as_ref()
            .map_or(l.mean.span.clone(), |m| m.span.clone());
        r.error(span, format!("`{what}.min` is above `{what}.max`"), None);
        return None;
    }
    Some(Lengths {
        mean,
        stddev,
        min,
        max,
    })
}

/// `[load] trace` and `time_scale`; `Some(None)` without a trace.
pub(super) fn trace(r: &mut Resolver<'_>, raw: &RawPlan, ctx: &Value) -> Option<Option<Trace>> {
    let l = &raw.load;
    let Some(t) = &l.trace else {
        if let Some(s) = &l.time_scale {
            r.error(
                s.span.clone(),
                "`load.time_scale` needs `load.trace`".into(),
                None,
            );
            return None;
        }
        return Some(None);
    };
    let file = r.text(t, "load.trace", ctx)?;
    let time_scale = match &l.time_scale {
        Some(s) => {
            let v = r.typed(s, "load.time_scale", ctx)?.0;
            if v <= 0.0 {
                r.error(
                    s.span.clone(),
                    "`load.time_scale` must be above 0".into(),
                    Some("2.0 replays twice as fast, 0.5 half as fast".into()),
                );
                return None;
            }
            v
        }
        None => 1.0,
    };
    let written = [
        ("users", l.users.as_ref().map(|u| u.span.clone())),
        ("rate", l.rate.as_ref().map(|u| u.span.clone())),
        ("stages", l.stages.first().map(|s| s.rate.span.clone())),
    ];
    for (knob, span) in written {
        if let Some(span) = span {
            r.error(span, format!("`load.{knob}` and `load.trace` both set the load: the trace sends one request per line at its timestamp"), Some(format!("remove `{knob}`, or `trace`")));
            return None;
        }
    }
    let path = r.dir.join(file);
    match scan_trace(&path) {
        Ok((lines, first_ms, span_ms)) => Some(Some(Trace {
            path,
            clock: TraceClock {
                first_ms,
                time_scale,
            },
            lines,
            span_ms,
            cut: None,
        })),
        Err(e) => {
            r.error(t.span.clone(), e.to_string(), Some(e.hint().into()));
            None
        }
    }
}

pub(super) fn resolve(
    r: &mut Resolver<'_>,
    q: &RequestSection,
    what: &str,
    ctx: &Value,
    trace: Option<&Trace>,
) -> Option<Resolved> {
    if trace.is_some() && (q.data.is_some() || q.synthetic.is_some() || q.order.is_some()) {
        let span = q
            .data
            .as_ref()
            .or(q.order.as_ref())
            .map_or(q.path.span.clone(), |d| d.span.clone());
        r.error(
            span,
            format!("`{what}` has its own rows or order, but `load.trace` sends the trace's lines in time order"),
            Some("remove `data`, `synthetic` and `order`, or `load.trace`".into()),
        );
        return None;
    }
    let (source, span) = match (&q.data, &q.synthetic) {
        (None, None) if trace.is_some() => {
            let t = trace?;
            (DataSource::File(t.path.clone()), q.path.span.clone())
        }
        (None, None) => {
            if let Some(o) = &q.order {
                r.error(
                    o.span.clone(),
                    format!("`{what}.order` needs `data` or `synthetic`"),
                    Some("remove `order`, or give the request rows".into()),
                );
                return None;
            }
            return Some(Resolved {
                data: None,
                ctx: None,
                row_path: None,
                row_headers: Vec::new(),
            });
        }
        (Some(d), Some(_)) => {
            r.error(
                d.span.clone(),
                format!("`{what}` has both `data` and `synthetic`"),
                Some("keep one: a file of rows, or generated rows".into()),
            );
            return None;
        }
        (Some(d), None) => {
            let file = r.text(d, &format!("{what}.data"), ctx)?;
            (DataSource::File(r.dir.join(file)), d.span.clone())
        }
        (None, Some(s)) => {
            let w = format!("{what}.synthetic");
            let rows = r.typed(&s.rows, &format!("{w}.rows"), ctx)?.0;
            if !(1..=MAX_SYNTHETIC_ROWS).contains(&rows) {
                r.error(
                    s.rows.span.clone(),
                    format!("`{w}.rows` must be from 1 to {MAX_SYNTHETIC_ROWS}"),
                    None,
                );
                return None;
            }
            let prompt_tokens = lengths(r, &s.prompt_tokens, &format!("{w}.prompt_tokens"), ctx);
            let output_tokens = lengths(r, &s.output_tokens, &format!("{w}.output_tokens"), ctx);
            let seed = match &s.seed {
                Some(t) => r.typed(t, &format!("{w}.seed"), ctx)?.0,
                None => 1,
            };
            let source = DataSource::Synthetic(Synthetic {
                rows,
                prompt_tokens: prompt_tokens?,
                output_tokens: output_tokens?,
                seed,
            });
            (source, s.rows.span.clone())
        }
    };
    let order = match &q.order {
        None if trace.is_some() => RowOrder::Sequential,
        None => RowOrder::Shuffle,
        Some(o) => {
            let text = r.text(o, &format!("{what}.order"), ctx)?;
            let Some(order) = RowOrder::parse(text.trim()) else {
                r.error(
                    o.span.clone(),
                    format!(
                        "`{what}.order` must be \"shuffle\", \"sequential\" or \"random\", not \"{text}\""
                    ),
                    None,
                );
                return None;
            };
            order
        }
    };
    let mut row_headers = Vec::new();
    let mut refused = false;
    for (name, t) in &q.headers {
        if row_fields(r.templates.environment(), template_of(t)).is_empty() {
            continue;
        }
        if let Some((message, hint)) = refuse_row_header(name) {
            r.error(
                t.span.clone(),
                format!("`{what}.headers.{name}` uses `row`, but {message}"),
                Some(hint),
            );
            refused = true;
            continue;
        }
        row_headers.push((name.clone(), template_of(t).to_owned()));
    }
    if refused {
        return None;
    }
    // Every `row.x` each template names, with where it is named.
    let mut named: Vec<(String, String, Range<usize>, String)> = Vec::new();
    let headers = q
        .headers
        .iter()
        .map(|(name, t)| (format!("headers.{name}"), Some(t)));
    let templates = [
        ("path".to_owned(), Some(&q.path)),
        ("body".to_owned(), q.body.as_ref()),
    ]
    .into_iter()
    .chain(headers);
    for (field, t) in templates {
        let Some(t) = t else { continue };
        let text = template_of(t).to_owned();
        for f in row_fields(r.templates.environment(), &text) {
            named.push((f, format!("{what}.{field}"), t.span.clone(), text.clone()));
        }
    }
    let mut sample = None;
    let mut missing: Vec<(usize, usize, BTreeSet<String>)> = Vec::new();
    let result = for_each_row::<DataError>(&source, |line, row| {
        for (k, (f, ..)) in named.iter().enumerate() {
            if !row.contains_key(f) && !missing.iter().any(|m| m.0 == k) {
                missing.push((k, line, row.keys().cloned().collect()));
            }
        }
        if sample.is_none() {
            sample = Some(row);
        }
        Ok(())
    });
    if let Err(e) = result {
        r.error(span, e.to_string(), Some(e.hint().into()));
        return None;
    }
    let file = match &source {
        DataSource::File(p) => p.display().to_string(),
        DataSource::Synthetic(_) => "the synthetic rows".into(), // line = row number
    };
    for (k, line, fields) in &missing {
        let (f, field, span, text) = &named[*k];
        let needle = format!("row.{f}");
        let at = text
            .find(&needle)
            .and_then(|i| r.inner_span(span, text, i..i + needle.len()))
            .unwrap_or_else(|| span.clone());
        let known: Vec<&str> = fields.iter().map(String::as_str).collect();
        r.error(
            at,
            format!("`{field}` names `{needle}`, but line {line} of {file} has no field `{f}`"),
            Some(format!(
                "that row's fields: {}; every row needs each field a template names",
                known.join(", ")
            )),
        );
    }
    if !missing.is_empty() {
        return None;
    }
    let seed = match &source {
        DataSource::Synthetic(s) => s.seed,
        DataSource::File(_) => 1,
    };
    let row = Value::from(minijinja::value::Serde(sample.unwrap_or_default()));
    let merged = minijinja::context! { row => row, ..ctx.clone() };
    Some(Resolved {
        data: Some(RequestData {
            source,
            order,
            seed,
            trace: trace.map(|t| t.clock),
        }),
        ctx: Some(merged),
        row_path: named
            .iter()
            .any(|(_, field, ..)| *field == format!("{what}.path"))
            .then(|| template_of(&q.path).to_owned()),
        row_headers,
    })
}

/// Why a header may not vary per row, and the fix; `None` when it may.
/// These headers frame the request or the connection (its target, length,
/// lifetime or protocol), which every request must agree on.
fn refuse_row_header(name: &str) -> Option<(String, String)> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.starts_with(':') {
        return Some((
            format!("`{name}` is an HTTP/2 pseudo-header, which the engine sets from the method, `base_url` and `path`"),
            "put per-row values in `path` (e.g. path = \"/v1/{{ row.route }}\"), the body or an ordinary header".into(),
        ));
    }
    if hyper::header::HeaderName::from_bytes(lower.as_bytes()).is_err() {
        return Some((
            format!("`{name}` is not a valid header name"),
            "a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces or colons)".into(),
        ));
    }
    const FRAMING: [&str; 8] = [
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "te",
        "proxy-connection",
    ];
    FRAMING.contains(&lower.as_str()).then(|| {
        (
            format!("`{name}` frames the request or the connection, so it must be the same for every request"),
            format!("give `{name}` a value without `row`, or send the row's value in another header, the path or the body"),
        )
    })
}

fn template_of(t: &Text) -> &str {
    match &t.raw {
        Scalar::Str(s) => s,
        _ => "",
    }
}
