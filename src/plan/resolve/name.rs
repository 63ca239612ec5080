//! The plan's `name`, which names the results folder.

use super::resolver::Resolver;
use crate::plan::raw::RawPlan;

pub(super) fn check(r: &mut Resolver<'_>, raw: &RawPlan) {
    let name = &raw.name.value;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        let suggestion: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        r.error(
            raw.name.span.clone(),
            format!("plan name \"{name}\" may only use lowercase letters, digits and `-`"),
            Some(format!(
                "it names the results folder; try \"{}\"",
                suggestion.trim_matches('-')
            )),
        );
    } else if name.len() > MAX_NAME {
        r.error(
            raw.name.span.clone(),
            format!(
                "plan name is {} characters long; it names the results folder, which takes at most {MAX_NAME}",
                name.len()
            ),
            Some(format!("shorten it to {MAX_NAME} characters or fewer")),
        );
    }
}

/// The plan name is a folder name: file systems take 255 bytes.
const MAX_NAME: usize = 255;
