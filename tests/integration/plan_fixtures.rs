//! Every plan under tests/plans/invalid fails validation with exactly the
//! diagnostics in its snapshot; every plan under tests/plans/valid and plans/
//! validates, and `loadmatrix plan` prints each tests/plans/valid plan as in
//! its snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use loadmatrix::plan::template::EnvVars;
use loadmatrix::plan::{self, LoadOptions, PlanError};

/// The environment the fixtures' `env.*` templates read.
fn fixture_env_values() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "LOADMATRIX_FIXTURE_TOKEN".to_string(),
            "fixture-secret".to_string(),
        ),
        ("API_TOKEN".to_string(), "fixture-api-token".to_string()),
    ])
}

fn fixture_env() -> EnvVars {
    EnvVars::from_map(fixture_env_values())
}

fn plans_in(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Loads with paths relative to the crate root so snapshots are stable.
fn load(path: &Path) -> Result<plan::Plan, PlanError> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // insta::glob! hands over canonical paths.
    let canonical_root = root.canonicalize().unwrap();
    let relative = path
        .strip_prefix(root)
        .or_else(|_| path.strip_prefix(&canonical_root))
        .unwrap_or(path);
    let bytes = std::fs::read(path).unwrap();
    let options = LoadOptions {
        env: Some(fixture_env()),
        ..Default::default()
    };
    // Tests run from the crate root; a relative path keeps snapshots portable.
    plan::load_bytes(relative, bytes, options).map_err(|e| match e {
        PlanError::Invalid(mut diags) => {
            for d in &mut diags {
                d.file = relative.to_path_buf();
            }
            PlanError::Invalid(diags)
        }
        other => other,
    })
}

#[test]
fn invalid_plans_report_every_error_with_its_place() {
    let files = plans_in("tests/plans/invalid");
    assert!(files.len() >= 30, "only {} invalid fixtures", files.len());
    // One snapshot per fixture; glob! reports every mismatch before failing.
    insta::glob!("../plans/invalid", "*.toml", |file| {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        match load(file) {
            Ok(_) => panic!("{name} should be invalid"),
            Err(PlanError::Invalid(diags)) => {
                assert!(!diags.is_empty(), "{name}: no diagnostics");
                let rendered = loadmatrix::diagnostic::render_all(&diags);
                insta::assert_snapshot!(rendered);
            }
            Err(e) => panic!("{name}: {e}"),
        }
    });
}

#[test]
fn valid_plans_validate() {
    let mut files = plans_in("tests/plans/valid");
    files.extend(plans_in("plans"));
    assert!(files.len() >= 9);
    for file in files {
        if let Err(e) = load(&file) {
            panic!("{} should be valid:\n{e}", file.display());
        }
    }
}

#[test]
fn many_errors_are_reported_together() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/invalid/many-errors-at-once.toml");
    let Err(PlanError::Invalid(diags)) = load(&file) else {
        panic!("expected errors")
    };
    let lines: Vec<(usize, usize)> = diags.iter().map(|d| d.line_col()).collect();
    // one per mistake, each at its own line
    assert!(diags.len() >= 5, "{diags:#?}");
    let mut distinct = lines.clone();
    distinct.dedup_by_key(|l| l.0);
    assert!(distinct.len() >= 5, "{lines:?}");
}

#[test]
fn valid_plans_print_their_plan() {
    // `loadmatrix plan` text for each valid fixture: cells, steps, estimate.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::glob!("../plans/valid", "*.toml", |file| {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        // A path relative to the crate root, as a user would type it.
        let relative = Path::new("tests/plans/valid").join(&name);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
            .arg("plan")
            .arg(&relative)
            .current_dir(root)
            .envs(fixture_env_values())
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        insta::assert_snapshot!(String::from_utf8(o.stdout).unwrap());
    });
}
