//! Where an ONNX model's tensors keep their external data, and whether every such file lies
//! inside the model's own directory.
//!
//! ONNX Runtime reads a tensor marked `data_location = EXTERNAL` from the file its `location`
//! names, relative to the model file, and follows `..`, absolute paths and symbolic links: a
//! model could make the server read any file it can open. So before a model is handed to the
//! runtime, its tensors are found here (only the message fields that can hold a tensor are
//! decoded; prost skips every other field) and each location is checked.

use std::path::{Component, Path};

use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "20")]
    training_info: Vec<TrainingInfoProto>,
    #[prost(message, repeated, tag = "25")]
    functions: Vec<FunctionProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TrainingInfoProto {
    #[prost(message, optional, tag = "1")]
    initialization: Option<GraphProto>,
    #[prost(message, optional, tag = "2")]
    algorithm: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct FunctionProto {
    #[prost(message, repeated, tag = "7")]
    node: Vec<NodeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    sparse_initializer: Vec<SparseTensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(message, optional, tag = "6")]
    g: Option<GraphProto>,
    #[prost(message, repeated, tag = "10")]
    tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    graphs: Vec<GraphProto>,
    #[prost(message, optional, tag = "22")]
    sparse_tensor: Option<SparseTensorProto>,
    #[prost(message, repeated, tag = "23")]
    sparse_tensors: Vec<SparseTensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    indices: Option<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// Every external data `location` the model's tensors name, in graph order.
fn external_locations(model: &[u8]) -> Result<Vec<String>, String> {
    let model =
        ModelProto::decode(model).map_err(|err| format!("not an ONNX model file: {err}"))?;
    let mut found = Vec::new();
    let mut graphs: Vec<&GraphProto> = model.graph.iter().collect();
    for info in &model.training_info {
        graphs.extend(info.initialization.iter().chain(&info.algorithm));
    }
    let mut nodes: Vec<&NodeProto> = model.functions.iter().flat_map(|f| &f.node).collect();
    let mut tensors: Vec<&TensorProto> = Vec::new();
    // Subgraphs nest without bound, so the walk keeps its own stack rather than recursing.
    loop {
        if let Some(graph) = graphs.pop() {
            nodes.extend(&graph.node);
            tensors.extend(&graph.initializer);
            tensors.extend(graph.sparse_initializer.iter().flat_map(sparse_parts));
        } else if let Some(node) = nodes.pop() {
            for attribute in &node.attribute {
                tensors.extend(attribute.t.iter().chain(&attribute.tensors));
                tensors.extend(
                    attribute
                        .sparse_tensor
                        .iter()
                        .chain(&attribute.sparse_tensors)
                        .flat_map(sparse_parts),
                );
                graphs.extend(attribute.g.iter().chain(&attribute.graphs));
            }
        } else {
            break;
        }
    }
    for tensor in tensors {
        found.extend(
            tensor
                .external_data
                .iter()
                .filter(|entry| entry.key == "location")
                .map(|entry| entry.value.clone()),
        );
    }
    Ok(found)
}

fn sparse_parts(sparse: &SparseTensorProto) -> impl Iterator<Item = &TensorProto> {
    sparse.values.iter().chain(&sparse.indices)
}

/// Checks that every external data file of the model in `dir` is a relative path that stays
/// inside `dir`, also once symbolic links are resolved.
pub(super) fn check_confined(dir: &Path, model: &[u8]) -> Result<(), String> {
    let locations = external_locations(model)?;
    if locations.is_empty() {
        return Ok(());
    }
    let root = dir
        .canonicalize()
        .map_err(|err| format!("cannot resolve {}: {err}", dir.display()))?;
    for location in locations {
        let relative = Path::new(&location);
        let plain = !location.is_empty()
            && relative
                .components()
                .all(|part| matches!(part, Component::Normal(_)));
        if !plain {
            return Err(format!(
                "external data location '{location}' must be a relative path inside the model's directory"
            ));
        }
        let file = root.join(relative);
        let resolved = file
            .canonicalize()
            .map_err(|err| format!("external data file '{location}' cannot be opened: {err}"))?;
        if !resolved.starts_with(&root) {
            return Err(format!(
                "external data location '{location}' leads outside the model's directory"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(location: &str) -> TensorProto {
        TensorProto {
            external_data: vec![
                StringStringEntryProto {
                    key: "location".to_owned(),
                    value: location.to_owned(),
                },
                StringStringEntryProto {
                    key: "offset".to_owned(),
                    value: "0".to_owned(),
                },
            ],
        }
    }

    /// A model with external data in an initializer and in a tensor attribute of a node inside
    /// an `If` branch's subgraph.
    fn model(initializer: &str, nested: &str) -> Vec<u8> {
        let branch = GraphProto {
            node: vec![NodeProto {
                attribute: vec![AttributeProto {
                    t: Some(tensor(nested)),
                    ..AttributeProto::default()
                }],
            }],
            ..GraphProto::default()
        };
        ModelProto {
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    attribute: vec![AttributeProto {
                        g: Some(branch),
                        ..AttributeProto::default()
                    }],
                }],
                initializer: vec![tensor(initializer)],
                sparse_initializer: Vec::new(),
            }),
            ..ModelProto::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn locations_are_found_in_initializers_and_nested_subgraphs() {
        let found = external_locations(&model("weights.bin", "branch.bin")).expect("decodes");
        let mut found = found;
        found.sort();
        assert_eq!(found, ["branch.bin", "weights.bin"]);
        assert!(external_locations(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn only_files_inside_the_model_directory_are_allowed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let model_dir = dir.path().join("model");
        std::fs::create_dir_all(model_dir.join("data")).expect("mkdir");
        std::fs::write(model_dir.join("data/weights.bin"), b"w").expect("write");
        std::fs::write(dir.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), model_dir.join("link.bin"))
            .expect("symlink");

        assert!(check_confined(&model_dir, &model("data/weights.bin", "data/weights.bin")).is_ok());
        for bad in [
            "../secret",
            "/etc/passwd",
            "link.bin",
            "data/../../secret",
            "",
            "missing.bin",
        ] {
            let refused = check_confined(&model_dir, &model("data/weights.bin", bad));
            assert!(refused.is_err(), "{bad:?} was accepted");
        }
    }
}
