//! MLflow's rules for a model version's `source`: it must lie inside the run or logged model the
//! request names, so a version can never claim files that belong to something else.

/// The artifact roots of the run and logged model a `model-versions/create` request names,
/// looked up by the caller (`None` when the request names none).
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceOwners<'a> {
    pub run_id: Option<&'a str>,
    pub run_artifact_uri: Option<&'a str>,
    pub model_id: Option<&'a str>,
    pub model_artifact_location: Option<&'a str>,
}

/// Checks `source` as MLflow's server does before registering a version.
pub fn validate_source(source: &str, owners: SourceOwners<'_>) -> Result<(), String> {
    let unquoted = iteratively_unquote(source);
    if unquoted.contains('\0') || unquoted.split(['/', '\\']).any(|segment| segment == "..") {
        return Err(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
        ));
    }
    let scheme = scheme_of(source);
    if scheme.is_none() || scheme == Some("file") {
        let owner = if owners.model_id.is_some() {
            "model_id"
        } else {
            "run_id"
        };
        return Err(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version source, the {owner} request parameter has to be specified and the local path has to be contained within the artifact directory of the resource it names."
        ));
    }
    let not_contained = |owner: &str| {
        Err(format!(
            "Invalid model version source: '{source}'. The {owner} request parameter must identify the resource that contains the source."
        ))
    };
    match owners.model_id {
        Some(model_id) => match scheme {
            Some("models") => match logged_model_id(source) {
                Some(source_model_id) if source_model_id == model_id => Ok(()),
                _ => not_contained("model_id"),
            },
            Some("runs") => not_contained("model_id"),
            Some("mlflow-artifacts") => match owners.model_artifact_location {
                Some(root) if is_within(source, root) => Ok(()),
                _ => not_contained("model_id"),
            },
            _ => Ok(()),
        },
        None => match scheme {
            Some("runs") => {
                let source_run_id = source
                    .trim_start_matches("runs:/")
                    .split('/')
                    .next()
                    .unwrap_or("");
                if source.starts_with("runs://") || owners.run_id != Some(source_run_id) {
                    return not_contained("run_id");
                }
                Ok(())
            }
            Some("models") if logged_model_id(source).is_some() => not_contained("model_id"),
            Some("mlflow-artifacts") => match owners.run_artifact_uri {
                Some(root) if owners.run_id.is_some() && is_within(source, root) => Ok(()),
                _ => not_contained("run_id"),
            },
            _ => Ok(()),
        },
    }
}

fn scheme_of(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let valid = !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        // A single letter is a Windows drive, not a scheme.
        && scheme.len() > 1;
    valid.then_some(scheme)
}

/// `m-<id>` of a `models:/m-<id>` source.
fn logged_model_id(source: &str) -> Option<&str> {
    let rest = source.strip_prefix("models:/")?;
    (rest.starts_with("m-") && !rest.contains('/')).then_some(rest)
}

fn iteratively_unquote(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..8 {
        let decoded = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .replace('+', " ");
        if decoded == current {
            break;
        }
        current = decoded;
    }
    current
}

/// Whether `uri` names `root` or something below it, comparing scheme, authority and path segments.
fn is_within(uri: &str, root: &str) -> bool {
    let parts = |text: &str| -> Option<(String, String, Vec<String>)> {
        let (scheme, rest) = text.split_once(':')?;
        let (authority, path) = match rest.strip_prefix("//") {
            Some(rest) => rest.split_once('/').unwrap_or((rest, "")),
            None => ("", rest),
        };
        let segments = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(iteratively_unquote)
            .collect();
        Some((
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase(),
            segments,
        ))
    };
    match (parts(uri), parts(root)) {
        (
            Some((scheme, authority, segments)),
            Some((root_scheme, root_authority, root_segments)),
        ) => {
            scheme == root_scheme
                && authority == root_authority
                && segments.starts_with(&root_segments)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "0123456789abcdef0123456789abcdef";

    fn run_owner() -> SourceOwners<'static> {
        SourceOwners {
            run_id: Some(RUN),
            run_artifact_uri: Some(
                "mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts",
            ),
            ..SourceOwners::default()
        }
    }

    fn model_owner() -> SourceOwners<'static> {
        SourceOwners {
            model_id: Some("m-abc"),
            model_artifact_location: Some("mlflow-artifacts:/1/models/m-abc/artifacts"),
            ..SourceOwners::default()
        }
    }

    #[test]
    fn sources_must_lie_in_the_named_owner() {
        let table: [(&str, SourceOwners<'static>, bool); 13] = [
            (
                "runs:/0123456789abcdef0123456789abcdef/model",
                run_owner(),
                true,
            ),
            ("runs:/ffff/model", run_owner(), false),
            (
                "runs:/0123456789abcdef0123456789abcdef/model",
                SourceOwners::default(),
                false,
            ),
            (
                "mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model",
                run_owner(),
                true,
            ),
            (
                "mlflow-artifacts:/1/models/m-abc/artifacts",
                run_owner(),
                false,
            ),
            (
                "mlflow-artifacts:/1/models/m-abc/artifacts",
                SourceOwners::default(),
                false,
            ),
            (
                "mlflow-artifacts:/1/models/m-abc/artifacts",
                model_owner(),
                true,
            ),
            (
                "mlflow-artifacts:/1/models/m-abc/artifacts/../../x",
                model_owner(),
                false,
            ),
            (
                "mlflow-artifacts:/1/models/m-abc/artifacts/%2E%2E/x",
                model_owner(),
                false,
            ),
            ("models:/m-abc", model_owner(), true),
            ("models:/m-other", model_owner(), false),
            ("s3://bucket/models/x", SourceOwners::default(), true),
            ("/tmp/local/model", run_owner(), false),
        ];
        for (source, owners, ok) in table {
            assert_eq!(validate_source(source, owners).is_ok(), ok, "{source}");
        }
    }
}
