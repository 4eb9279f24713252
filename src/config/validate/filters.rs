//! Route filters: `StripPrefix`, `PrefixPath`, the request-header filters and
//! `BackchannelLogout`, with the rules for their arguments.

use super::definition::{Definition, Names};
use super::number::IntRule;
use super::{ConfigError, Result};
use crate::http::is_tchar;
use crate::route::Filter;

pub(super) const FILTERS: Names = Names {
    what: "filter",
    known: &[
        "StripPrefix",
        "PrefixPath",
        "AddRequestHeader",
        "SetRequestHeader",
        "RemoveRequestHeader",
        "BackchannelLogout",
    ],
};

/// Builds a filter; `definitions` has already checked the name against [`FILTERS`].
pub(super) fn filter(d: &Definition) -> Result<Filter> {
    let at = |why: String| ConfigError::invalid(&d.path, why);
    Ok(match d.name.as_str() {
        "StripPrefix" => {
            let parts = d.args(&["parts"])?.remove(0);
            Filter::StripPrefix(IntRule::range(0, 1000).check(&parts, &d.path)? as usize)
        }
        "PrefixPath" => Filter::PrefixPath(prefix_path(&d.args(&["prefix"])?[0]).map_err(at)?),
        "AddRequestHeader" | "SetRequestHeader" => {
            let [name, value]: [String; 2] =
                d.args(&["name", "value"])?.try_into().expect("two values");
            let name = header_name(&name).map_err(at)?;
            header_value(&value).map_err(at)?;
            if d.name == "AddRequestHeader" {
                Filter::AddRequestHeader(name, value)
            } else {
                Filter::SetRequestHeader(name, value)
            }
        }
        "RemoveRequestHeader" => {
            Filter::RemoveRequestHeader(header_name(&d.args(&["name"])?[0]).map_err(at)?)
        }
        _ => {
            d.args(&[])?;
            Filter::BackchannelLogout
        }
    })
}

/// `PrefixPath` argument: starts with `/`; trailing slashes dropped (`/api/` is `/api`,
/// which avoids a `//` in every rewritten path).
fn prefix_path(p: &str) -> Result<String, String> {
    let trimmed = p.trim_end_matches('/');
    let valid = p.starts_with('/')
        && !trimmed.is_empty()
        && p.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'?' && b != b'#');
    if valid {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "expected a path such as /api (no query, spaces or bare /), got {p:?}"
        ))
    }
}

fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok(name.to_string())
}

/// Field values may hold visible characters, spaces, tabs and obs-text, never CR, LF,
/// NUL or other control characters (they would split or corrupt the upstream head).
fn header_value(value: &str) -> Result<(), String> {
    match value
        .bytes()
        .find(|b| (b.is_ascii_control() && *b != b'\t') || *b == 0x7f)
    {
        Some(b) => Err(format!(
            "header value contains the control character 0x{b:02x}"
        )),
        None => Ok(()),
    }
}
