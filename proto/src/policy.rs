//! Which version a model serves by default, when no explicit deployment says: the version the
//! `champion` alias names (an alias is a deliberate pointer, so it wins over a stage), else the
//! highest-numbered Production version (MLflow's "latest" per stage), else none. The registry
//! answers with it; a client of a registry without deployments applies it itself.

/// The alias that, when set, decides the default deployment ahead of the Production stage.
pub const CHAMPION_ALIAS: &str = "champion";
/// The stage whose latest version is served when no `champion` alias is set.
pub const PRODUCTION_STAGE: &str = "Production";

/// Why a version is the default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSource {
    /// The `champion` alias names it.
    Champion,
    /// It is the highest-numbered version in Production.
    Production,
}

impl DefaultSource {
    /// The name the deployments endpoint gives it as `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultSource::Champion => "champion",
            DefaultSource::Production => "production",
        }
    }
}

/// The default version, from the `champion` alias's version and the versions in Production.
pub fn default_version<V: Ord + Copy>(
    champion: Option<V>,
    production_versions: impl IntoIterator<Item = V>,
) -> Option<(DefaultSource, V)> {
    if let Some(version) = champion {
        return Some((DefaultSource::Champion, version));
    }
    production_versions
        .into_iter()
        .max()
        .map(|version| (DefaultSource::Production, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn champion_wins_then_the_highest_production_version() {
        assert_eq!(
            default_version(Some(2), [1, 5]),
            Some((DefaultSource::Champion, 2))
        );
        assert_eq!(
            default_version(None, [1, 5, 3]),
            Some((DefaultSource::Production, 5))
        );
        assert_eq!(default_version::<u64>(None, []), None);
    }
}
