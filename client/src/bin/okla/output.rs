//! Printing: JSON for `--json`, comfy-table tables otherwise, timestamps, and errors turned
//! into one line and an exit code.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// Exit code of a refusal by the registry, or a local failure.
const EXIT_REFUSED: u8 = 1;
/// Exit code when the registry could not be reached.
const EXIT_UNREACHABLE: u8 = 3;

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with `header`, ready for rows.
pub(crate) fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC; `-` for none.
pub(crate) fn timestamp(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|ms| *ms > 0) else {
        return "-".to_owned();
    };
    let seconds = ms.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One line for stderr and the exit code for `error`.
pub(crate) fn describe_error(error: &anyhow::Error, registry: &str) -> (String, u8) {
    let client_error = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<okla_client::Error>());
    let context: Vec<String> = error
        .chain()
        .take_while(|cause| cause.downcast_ref::<okla_client::Error>().is_none())
        .map(ToString::to_string)
        .collect();
    let prefix = if context.is_empty() || client_error.is_none() {
        String::new()
    } else {
        format!("{}: ", context.join(": "))
    };
    match client_error {
        Some(okla_client::Error::Transport { source, .. }) if source.is_connect() => (
            format!(
                "{prefix}cannot reach the registry: {}; is okla-registry running at {registry}? set --registry or OKLA_REGISTRY_URL",
                client_error.map(ToString::to_string).unwrap_or_default()
            ),
            EXIT_UNREACHABLE,
        ),
        Some(okla_client::Error::Connect { url, .. }) => (
            format!(
                "{prefix}{}; is okla-serving answering gRPC at {url}? set --serving or OKLA_SERVING_URL",
                client_error.map(ToString::to_string).unwrap_or_default()
            ),
            EXIT_UNREACHABLE,
        ),
        Some(okla_client::Error::Api {
            error_code,
            message,
            status,
            ..
        }) => {
            let code = if error_code.is_empty() {
                status.to_string()
            } else {
                error_code.clone()
            };
            (format!("{prefix}{code}: {message}"), EXIT_REFUSED)
        }
        _ => (
            format!("{error:#}").replace(['\n', '\r'], " "),
            EXIT_REFUSED,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(Some(0)), "-");
        assert_eq!(timestamp(None), "-");
        assert_eq!(timestamp(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(timestamp(Some(951_782_400_000)), "2000-02-29 00:00:00");
    }
}
