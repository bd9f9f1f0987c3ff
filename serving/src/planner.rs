//! The reconciliation planner: from what one model holds now and what its source aspires to
//! serve, the actions that bring the one in line with the other. Pure (no I/O, no async), so the
//! availability rules live here, in one place, under table tests; the manager only carries the
//! actions out.
//!
//! The rules, as TF Serving's availability-preserving policy has them: a version keeps serving
//! until its replacement is ready; a failed load never takes a serving version away; a label
//! only ever points at a ready version; a version is unloaded only once it is no longer aspired
//! to and the model has another ready version to answer with.

use std::collections::{BTreeMap, BTreeSet};

/// Where a version held by the manager stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Loading,
    Ready,
    Failed,
}

/// What the source aspires to serve for one model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aspired {
    pub versions: BTreeSet<u64>,
    pub labels: BTreeMap<String, u64>,
    /// Whether a ready version may stay as it was loaded: false when what versions are loaded
    /// with (the model's config apart from labels and version policy) changed.
    pub reuse_ready: bool,
}

/// One model as the manager holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub versions: BTreeMap<u64, Phase>,
    pub labels: BTreeMap<String, u64>,
}

/// A step of a reconciliation, in the order the manager carries them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Load the version (its current holder, if any, keeps serving meanwhile).
    Load(u64),
    /// Run the freshly loaded version once per session before it takes traffic.
    WarmUp(u64),
    /// Show the version's fresh load (ready, or failed with its error) in place of what was held.
    Switch(u64),
    /// Keep the version as held.
    Keep(u64),
    /// Take the version out of service.
    Unload(u64),
    /// Point the label at the version.
    Label { label: String, version: u64 },
}

/// What to load (and warm up) before anything is switched: every aspired version that is not
/// already ready with reusable settings.
pub fn plan_loads(held: &Held, aspired: &Aspired) -> Vec<Action> {
    aspired
        .versions
        .iter()
        .filter(|version| {
            !(aspired.reuse_ready && held.versions.get(version) == Some(&Phase::Ready))
        })
        .flat_map(|&version| [Action::Load(version), Action::WarmUp(version)])
        .collect()
}

/// What the model shows while the loads run: everything held keeps serving, and versions new
/// to the model show as loading.
pub fn while_loading(held: &Held, aspired: &Aspired) -> BTreeMap<u64, Phase> {
    let mut versions = held.versions.clone();
    for &version in &aspired.versions {
        versions.entry(version).or_insert(Phase::Loading);
    }
    versions
}

/// Once the loads are done (`loaded`: each fresh load and whether it came up ready), what the
/// model shows: every aspired version, every held version that still has to answer, and the
/// labels that point at ready versions.
pub fn plan_switch(held: &Held, aspired: &Aspired, loaded: &BTreeMap<u64, bool>) -> Vec<Action> {
    let held_ready = |version: &u64| held.versions.get(version) == Some(&Phase::Ready);
    let mut actions = Vec::new();
    let mut ready = BTreeSet::new();
    for &version in &aspired.versions {
        match loaded.get(&version) {
            Some(true) => {
                ready.insert(version);
                actions.push(Action::Switch(version));
            }
            // The held version stays: a failed reload never removes what serves.
            Some(false) if held_ready(&version) => {
                ready.insert(version);
                actions.push(Action::Keep(version));
            }
            Some(false) => actions.push(Action::Switch(version)),
            None => {
                if held_ready(&version) {
                    ready.insert(version);
                }
                actions.push(Action::Keep(version));
            }
        }
    }
    // With nothing aspired there is no replacement to wait for.
    let awaiting_replacement = !aspired.versions.is_empty() && ready.is_empty();
    for version in held.versions.keys() {
        if aspired.versions.contains(version) {
            continue;
        }
        if held_ready(version) && awaiting_replacement {
            // Its replacement is not ready, so it keeps answering.
            ready.insert(*version);
            actions.push(Action::Keep(*version));
        } else {
            actions.push(Action::Unload(*version));
        }
    }
    for (label, &version) in &aspired.labels {
        let target = if ready.contains(&version) {
            Some(version)
        } else {
            // Until the new target is ready, the label stays where it was if that still serves.
            held.labels
                .get(label)
                .copied()
                .filter(|previous| ready.contains(previous))
        };
        if let Some(version) = target {
            actions.push(Action::Label {
                label: label.clone(),
                version,
            });
        }
    }
    actions
}

/// Labels in `aspired` that `actions` do not point where the source asked (their target is not
/// ready), for the manager to warn about.
pub fn held_back_labels<'a>(aspired: &'a Aspired, actions: &[Action]) -> Vec<(&'a str, u64)> {
    aspired
        .labels
        .iter()
        .filter(|&(label, version)| {
            !actions.contains(&Action::Label {
                label: label.clone(),
                version: *version,
            })
        })
        .map(|(label, &version)| (label.as_str(), version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(versions: &[(u64, Phase)], labels: &[(&str, u64)]) -> Held {
        Held {
            versions: versions.iter().copied().collect(),
            labels: labels.iter().map(|&(l, v)| (l.to_owned(), v)).collect(),
        }
    }

    fn aspired(versions: &[u64], labels: &[(&str, u64)], reuse_ready: bool) -> Aspired {
        Aspired {
            versions: versions.iter().copied().collect(),
            labels: labels.iter().map(|&(l, v)| (l.to_owned(), v)).collect(),
            reuse_ready,
        }
    }

    fn label(label: &str, version: u64) -> Action {
        Action::Label {
            label: label.to_owned(),
            version,
        }
    }

    /// What is held, what is aspired, each fresh load's outcome, and the expected actions.
    type SwitchCase = (&'static str, Held, Aspired, Vec<(u64, bool)>, Vec<Action>);

    use Action::{Keep, Load, Switch, Unload, WarmUp};
    use Phase::{Failed, Loading, Ready};

    #[test]
    fn loads_are_planned_for_what_is_not_ready_with_the_same_settings() {
        let cases: Vec<(&str, Held, Aspired, Vec<Action>)> = vec![
            (
                "a new model loads and warms up every version",
                Held::default(),
                aspired(&[1, 2], &[], true),
                vec![Load(1), WarmUp(1), Load(2), WarmUp(2)],
            ),
            (
                "a ready version with unchanged settings is not reloaded",
                held(&[(1, Ready)], &[]),
                aspired(&[1, 2], &[], true),
                vec![Load(2), WarmUp(2)],
            ),
            (
                "changed settings reload even ready versions",
                held(&[(1, Ready)], &[]),
                aspired(&[1], &[], false),
                vec![Load(1), WarmUp(1)],
            ),
            (
                "a failed version is tried again when its model changed",
                held(&[(1, Failed)], &[]),
                aspired(&[1], &[], true),
                vec![Load(1), WarmUp(1)],
            ),
            (
                "nothing aspired, nothing loaded",
                held(&[(1, Ready)], &[]),
                aspired(&[], &[], true),
                vec![],
            ),
        ];
        for (case, held, aspired, expected) in cases {
            assert_eq!(plan_loads(&held, &aspired), expected, "{case}");
        }
    }

    #[test]
    fn the_old_version_keeps_serving_while_its_replacement_loads() {
        let shown = while_loading(&held(&[(1, Ready)], &[]), &aspired(&[2], &[], true));
        assert_eq!(shown, BTreeMap::from([(1, Ready), (2, Loading)]));
        let shown = while_loading(&held(&[(1, Ready)], &[]), &aspired(&[1], &[], false));
        assert_eq!(
            shown,
            BTreeMap::from([(1, Ready)]),
            "a reload keeps the held one"
        );
    }

    #[test]
    fn switches_preserve_availability() {
        let cases: Vec<SwitchCase> = vec![
            (
                "the replacement is ready: switch to it and unload the old one",
                held(&[(1, Ready)], &[]),
                aspired(&[2], &[], true),
                vec![(2, true)],
                vec![Switch(2), Unload(1)],
            ),
            (
                "the replacement failed: the old version keeps serving",
                held(&[(1, Ready)], &[]),
                aspired(&[2], &[], true),
                vec![(2, false)],
                vec![Switch(2), Keep(1)],
            ),
            (
                "a failed reload never removes the version that serves",
                held(&[(1, Ready)], &[]),
                aspired(&[1], &[], false),
                vec![(1, false)],
                vec![Keep(1)],
            ),
            (
                "a reload that succeeds replaces the held one",
                held(&[(1, Ready)], &[]),
                aspired(&[1], &[], false),
                vec![(1, true)],
                vec![Switch(1)],
            ),
            (
                "a failure next to a ready version lets the unaspired one go",
                held(&[(1, Ready), (2, Ready)], &[]),
                aspired(&[2, 3], &[], true),
                vec![(3, false)],
                vec![Keep(2), Switch(3), Unload(1)],
            ),
            (
                "versions no longer aspired that do not serve are unloaded",
                held(&[(1, Failed), (2, Loading)], &[]),
                aspired(&[3], &[], true),
                vec![(3, false)],
                vec![Switch(3), Unload(1), Unload(2)],
            ),
            (
                "a failed first load shows the failure",
                Held::default(),
                aspired(&[1], &[], true),
                vec![(1, false)],
                vec![Switch(1)],
            ),
            (
                "nothing aspired: every version is unloaded",
                held(&[(1, Ready)], &[]),
                aspired(&[], &[], true),
                vec![],
                vec![Unload(1)],
            ),
        ];
        for (case, held, aspired, loaded, expected) in cases {
            let loaded = loaded.into_iter().collect();
            assert_eq!(plan_switch(&held, &aspired, &loaded), expected, "{case}");
        }
    }

    #[test]
    fn labels_only_point_at_ready_versions() {
        let cases: Vec<SwitchCase> = vec![
            (
                "a label moves once its new target is ready",
                held(&[(1, Ready)], &[("stable", 1)]),
                aspired(&[1, 2], &[("stable", 2)], true),
                vec![(2, true)],
                vec![Keep(1), Switch(2), label("stable", 2)],
            ),
            (
                "a label stays on its old target while the new one failed",
                held(&[(1, Ready)], &[("stable", 1)]),
                aspired(&[1, 2], &[("stable", 2)], true),
                vec![(2, false)],
                vec![Keep(1), Switch(2), label("stable", 1)],
            ),
            (
                "a label whose target never was ready is left out",
                Held::default(),
                aspired(&[1], &[("stable", 1)], true),
                vec![(1, false)],
                vec![Switch(1)],
            ),
            (
                "a label on a version that is not aspired is left out",
                held(&[(1, Ready)], &[]),
                aspired(&[1], &[("canary", 7)], true),
                vec![],
                vec![Keep(1)],
            ),
            (
                "a label does not stay on a version that was unloaded",
                held(&[(1, Ready)], &[("stable", 1)]),
                aspired(&[2, 3], &[("stable", 3)], true),
                vec![(2, true), (3, false)],
                vec![Switch(2), Switch(3), Unload(1)],
            ),
        ];
        for (case, held, aspired, loaded, expected) in cases {
            let loaded = loaded.into_iter().collect();
            let actions = plan_switch(&held, &aspired, &loaded);
            assert_eq!(actions, expected, "{case}");
        }
    }

    #[test]
    fn labels_held_back_are_named() {
        let wanted = aspired(&[1, 2], &[("stable", 2), ("old", 1)], true);
        let actions = vec![label("stable", 1), label("old", 1)];
        assert_eq!(held_back_labels(&wanted, &actions), [("stable", 2)]);
    }
}
