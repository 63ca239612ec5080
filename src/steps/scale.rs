//! scale and ready: bring the system under test to the cell's replica count
//! and wait until it answers.

use crate::plan::spanned::Backend as BackendKind;
use crate::run::state::{Backend, RunState};
use crate::steps::StepError;
use crate::system::local::LocalBackend;
use crate::system::ready::wait_ready;

pub async fn scale(state: &RunState, c: usize) -> Result<(), StepError> {
    let cell = &state.plan.cells[c];
    let sys = &cell.system;
    match sys.backend {
        BackendKind::None => Ok(()),
        BackendKind::Local => {
            let mut backend = state.backend.lock().await;
            if !matches!(*backend, Backend::Local(_)) {
                let logs = state.dir.root.join("logs");
                std::fs::create_dir_all(&logs)?;
                *backend = Backend::Local(LocalBackend::new(&logs));
            }
            let Backend::Local(local) = &mut *backend else {
                return Err(StepError::new("local backend missing"));
            };
            let plan = state.plan.clone();
            let argv_for = move |replica: usize, port: u16| -> Result<Vec<String>, String> {
                let ctx = crate::run::cell_context(&plan, c, Some((replica, port)));
                sys.command
                    .iter()
                    .map(|arg| plan.templates.render(arg, &ctx).map_err(|e| e.to_string()))
                    .collect()
            };
            for e in local.reap() {
                state.cell_event(c, e).await;
            }
            let before = local.len();
            let events = local.scale(sys.replicas as usize, &argv_for, &sys.env)?;
            for e in events {
                state.cell_event(c, e).await;
            }
            state
                .cell_event(
                    c,
                    format!("scaled local replicas {before} -> {}", sys.replicas),
                )
                .await;
            Ok(())
        }
        other => Err(StepError::new(format!(
            "backend \"{}\" cannot be run by this build yet: it is validated, but scaling it arrives with the Docker backends",
            other.as_str()
        ))),
    }
}

pub async fn ready(state: &RunState, c: usize) -> Result<(), StepError> {
    let cell = &state.plan.cells[c];
    let endpoints = state.backend.lock().await.endpoints();
    let mut backend = state.backend.lock().await;
    let mut failed = || match &mut *backend {
        Backend::Local(l) => l.exited().map(|e| e.to_string()),
        Backend::None => None,
    };
    match wait_ready(&cell.system.ready, &endpoints, &mut failed).await {
        Ok(took) => {
            drop(backend);
            state
                .cell_event(c, format!("ready after {:.2}s", took.as_secs_f64()))
                .await;
            Ok(())
        }
        Err(e) => Err(StepError::new(format!("system not ready: {e}"))),
    }
}
