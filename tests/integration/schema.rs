//! The committed JSON Schema is the generated one, and every example plan
//! satisfies it. Regenerate with `cargo run -- schema > schemas/plan.schema.json`.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed_schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    assert!(
        committed == loadmatrix::plan::json_schema(),
        "schemas/plan.schema.json is stale: run `cargo run -- schema > schemas/plan.schema.json`"
    );
}

fn plan_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    serde_json::to_value(value).unwrap()
}

fn toml_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_plan_satisfies_the_schema() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    let mut files = toml_files("plans");
    files.extend(toml_files("tests/plans/valid"));
    assert!(files.len() >= 9);
    for file in files {
        let instance = plan_as_json(&file);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

#[test]
fn the_schema_rejects_what_validation_rejects() {
    let validator = jsonschema::validator_for(&committed_schema()).unwrap();
    for name in [
        "unknown-cell-key",
        "bad-duration-unit",
        "unknown-backend",
        "step-unknown-uses",
        "missing-name",
    ] {
        let file = root().join(format!("tests/plans/invalid/{name}.toml"));
        assert!(
            !validator.is_valid(&plan_as_json(&file)),
            "{name} passes the schema"
        );
    }
}
