//! Unknown keys and names: the error for one, with the nearest known name suggested when it
//! is close enough to be a likely typo.

use super::ConfigError;
use crate::config::raw::child_path;

pub(super) fn unknown_key(path: &str, key: &str, known: &[&str]) -> ConfigError {
    let full = child_path(path, key);
    let message = match suggest(key, known) {
        Some(best) => format!("unknown key; did you mean `{}`?", child_path(path, best)),
        None => format!("unknown key; known keys here: {}", known.join(", ")),
    };
    ConfigError::invalid(&full, message)
}

/// The known name nearest to `given`, when near enough to be a likely typo. Names are
/// compared without case, `-` and `_`, so `session-timeout-sec` finds `sessionTimeoutSec`.
pub(super) fn suggest<'k>(given: &str, known: &[&'k str]) -> Option<&'k str> {
    let given = fold(given);
    let limit = (given.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (levenshtein(&given, &fold(k)), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Edit distance (insertions, deletions, substitutions), one row at a time.
pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
