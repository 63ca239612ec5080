//! scale and ready: bring the system under test to the cell's replica count
//! and wait until it answers.

use crate::plan::Cell;
use crate::system::ScaleRequest;

use super::{Events, StepContext, StepError, StepOutput, until_cancelled};

pub async fn scale(
    ctx: &StepContext,
    cell: &Cell,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    let plan = ctx.plan.clone();
    let sys = &cell.system;
    let mut slot = ctx.backend.lock().await;
    if slot
        .as_ref()
        .is_none_or(|b| b.kind() != sys.backend.as_str())
    {
        // First cell, or the backend changed: stop the old one, connect the new.
        if let Some(mut old) = slot.take() {
            for e in old.stop_all().await {
                events.push(e);
            }
        }
        let logs = ctx.dir.root.join("logs");
        let secrets = plan.secrets();
        *slot = Some(
            until_cancelled(ctx, crate::system::backend::connect(sys, &logs, &secrets)).await??,
        );
    }
    let Some(backend) = slot.as_mut() else {
        return Err(StepError::failed("no backend"));
    };
    let argv_for = |replica: usize, port: u16| -> Result<Vec<String>, String> {
        let vars = plan.cell_context(cell, Some((replica, port)));
        sys.command
            .iter()
            .map(|arg| plan.templates.render(arg, &vars).map_err(|e| e.to_string()))
            .collect()
    };
    let request = ScaleRequest {
        replicas: usize::try_from(sys.replicas).unwrap_or(usize::MAX),
        argv_for: &argv_for,
        env: &sys.env,
    };
    for e in until_cancelled(ctx, backend.scale(request)).await?? {
        events.push(e);
    }
    Ok(StepOutput::Done)
}

pub async fn ready(
    ctx: &StepContext,
    cell: &Cell,
    events: &mut Events,
) -> Result<StepOutput, StepError> {
    let ready = &cell.system.ready;
    let mut slot = ctx.backend.lock().await;
    let mut none = crate::system::backend::NoBackend;
    let backend: &mut dyn crate::system::Backend = match slot.as_deref_mut() {
        Some(b) => b,
        None => &mut none,
    };
    match until_cancelled(ctx, backend.wait_ready(ready)).await? {
        Ok(took) => {
            events.push(format!("ready after {:.2}s", took.as_secs_f64()));
            Ok(StepOutput::Done)
        }
        Err(e) => Err(StepError::failed(format!("system not ready: {e}"))),
    }
}
