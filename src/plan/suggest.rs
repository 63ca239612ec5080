//! "did you mean ...?" hints: the one place that decides which known names
//! are close to a misspelt one, and how the hint reads.

/// How closeness is judged. Plan keys and step names are compared by
/// similarity; metric and aggregate names in expressions are short (`p95`,
/// `max`), where similarity is too loose, so they count edits instead.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Closeness {
    /// Jaro-Winkler similarity above 0.8; the single most similar name.
    Similar,
    /// At most one edit (two for names longer than four characters),
    /// ignoring ASCII case; every name at the smallest distance. When none
    /// is that close, `aliases` maps names people reach for to ours.
    Edits {
        aliases: &'static [(&'static str, &'static str)],
    },
}

/// "did you mean `x`?" (or "`x`, `y` or `z`") for a misspelt name among the
/// known ones; `None` when nothing is close.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
    closeness: Closeness,
) -> Option<String> {
    let known: Vec<&str> = known.into_iter().collect();
    let close = match closeness {
        Closeness::Similar => vec![most_similar(name, &known)?],
        Closeness::Edits { aliases } => fewest_edits(name, &known, aliases)?,
    };
    let quoted: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
    let list = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    };
    Some(format!("did you mean {list}?"))
}

fn most_similar<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|&k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn fewest_edits<'a>(
    name: &str,
    known: &[&'a str],
    aliases: &[(&str, &str)],
) -> Option<Vec<&'a str>> {
    let lower = name.to_ascii_lowercase();
    let limit = if name.chars().count() > 4 { 2 } else { 1 };
    let best = known
        .iter()
        .map(|c| strsim::osa_distance(&lower, c))
        .min()?;
    if best <= limit {
        return Some(
            known
                .iter()
                .copied()
                .filter(|c| strsim::osa_distance(&lower, c) == best)
                .collect(),
        );
    }
    let alias = aliases
        .iter()
        .find(|(from, _)| *from == lower)
        .map(|&(_, to)| to)?;
    Some(vec![known.iter().copied().find(|c| *c == alias)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_suggests_the_closest_name_only() {
        assert_eq!(
            did_you_mean("durtion", ["duration", "warmup"], Closeness::Similar),
            Some("did you mean `duration`?".into())
        );
        assert_eq!(
            did_you_mean("zzz", ["duration", "warmup"], Closeness::Similar),
            None
        );
    }

    #[test]
    fn edits_lists_every_name_at_the_smallest_distance_then_aliases() {
        let edits = Closeness::Edits {
            aliases: &[("avg", "mean")],
        };
        assert_eq!(
            did_you_mean("p96", ["p90", "p95", "rps"], edits),
            Some("did you mean `p90` or `p95`?".into())
        );
        assert_eq!(
            did_you_mean("P95", ["p90", "p95"], edits),
            Some("did you mean `p95`?".into())
        );
        assert_eq!(
            did_you_mean("avg", ["min", "mean"], edits),
            Some("did you mean `mean`?".into())
        );
        assert_eq!(did_you_mean("avg", ["min", "max"], edits), None);
        assert_eq!(did_you_mean("zzz", [], edits), None);
    }
}
