//! No input makes validation panic: truncations and byte mutations of every
//! example plan end in Ok or a clean list of diagnostics.

use std::collections::BTreeMap;
use std::path::Path;

use loadmatrix::plan::template::EnvVars;
use loadmatrix::plan::{self, LoadOptions, PlanError};

fn check(path: &Path, text: &str) {
    let options = LoadOptions {
        env: Some(EnvVars::from_map(BTreeMap::new())),
        ..Default::default()
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        plan::load_str(path, text, options)
    }));
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(PlanError::Invalid(diags))) => {
            assert!(!diags.is_empty());
            for d in &diags {
                let _ = d.render();
            }
        }
        Ok(Err(e)) => panic!("unexpected error kind: {e}"),
        Err(_) => panic!("validation panicked on input:\n{text}"),
    }
}

/// A small deterministic generator: no extra crate, same cases every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const INTERESTING: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "\"",
    "'",
    "[",
    "]",
    "=",
    "\n",
    "..",
    "%",
    "ms",
    "é",
    "\u{0}",
    "-1",
    "1e400",
    "[[step]]\nid=\"x\"\nuses=\"exec\"\nneeds=[\"x\"]\n",
    "{{ matrix.x }}",
    "users = []",
];

#[test]
fn truncated_and_mutated_plans_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["plans", "tests/plans/valid", "tests/plans/invalid"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for file in &files {
        // The non-UTF-8 fixture is mutated as the text a lossy reader sees.
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        // truncations at 24 spread points
        for k in 0..24 {
            let cut = boundaries[k * (boundaries.len() - 1) / 23];
            check(file, &text[..cut]);
        }
        // insertions of interesting fragments and deletions of spans
        for _ in 0..40 {
            let at = boundaries[(rng.next() as usize) % boundaries.len()];
            let mut mutated = text.clone();
            if rng.next().is_multiple_of(2) {
                let frag = INTERESTING[(rng.next() as usize) % INTERESTING.len()];
                mutated.insert_str(at, frag);
            } else {
                let end = boundaries
                    .iter()
                    .copied()
                    .find(|b| *b >= at + (rng.next() as usize % 12))
                    .unwrap_or(text.len());
                mutated.replace_range(at..end, "");
            }
            check(file, &mutated);
        }
    }
}
