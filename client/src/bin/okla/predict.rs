//! `okla predict MODEL --input JSON`: one V2 gRPC inference on okla-serving.

use anyhow::{Context as _, bail};
use okla_client::{InputTensor, Predictor, TensorValues};
use serde_json::{Map, Value, json};

use crate::Context;
use crate::output::{print_json, table};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model to ask.
    model: String,
    /// The inputs as a JSON object of nested arrays, e.g.
    /// '{"features": [[3, 2019, 60000, 1.6, 0, 1, 4, 12]]}': each input's shape is its
    /// nesting, its datatype the one the model declares.
    #[arg(long)]
    input: String,
    /// A version number; by default the model's deployment picks one.
    #[arg(long)]
    version: Option<u64>,
    /// Keeps the caller on one version of a sticky deployment.
    #[arg(long)]
    routing_key: Option<String>,
    /// okla-serving's gRPC address.
    #[arg(
        long,
        env = "OKLA_SERVING_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    serving: String,
}

pub(crate) async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let given: Map<String, Value> = serde_json::from_str(&args.input)
        .context("--input must be a JSON object of input name to nested array")?;
    let mut predictor = Predictor::connect(&args.serving).await?;
    if let Some(key) = args.routing_key {
        predictor = predictor.with_routing_key(key);
    }
    let declared = predictor
        .input_datatypes(&args.model)
        .await
        .with_context(|| format!("reading the inputs of model '{}'", args.model))?;
    let mut inputs = Vec::new();
    for (name, value) in &given {
        let Some((_, datatype)) = declared.iter().find(|(declared, _)| declared == name) else {
            let names: Vec<&str> = declared.iter().map(|(name, _)| name.as_str()).collect();
            bail!(
                "model '{}' has no input '{name}' (its inputs: {})",
                args.model,
                names.join(", ")
            );
        };
        inputs.push(input_tensor(name, datatype, value)?);
    }
    let prediction = predictor.predict(&args.model, args.version, inputs).await?;
    if context.json {
        let outputs: Vec<Value> = prediction
            .outputs
            .iter()
            .map(|output| {
                json!({"name": output.name, "datatype": output.datatype,
                       "shape": output.shape, "data": values_json(&output.data)})
            })
            .collect();
        return print_json(&json!({
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
            "outputs": outputs,
        }));
    }
    let mut rows = table(["output", "datatype", "shape", "data"]);
    for output in &prediction.outputs {
        let shape: Vec<String> = output.shape.iter().map(ToString::to_string).collect();
        rows.add_row([
            output.name.clone(),
            output.datatype.clone(),
            format!("[{}]", shape.join(", ")),
            values_json(&output.data).to_string(),
        ]);
    }
    out!("{rows}");
    out!(
        "answered by {} version {}",
        prediction.model_name,
        prediction.model_version
    );
    Ok(())
}

/// The tensor `name` of `datatype` from a nested JSON array; its nesting is the shape.
fn input_tensor(name: &str, datatype: &str, value: &Value) -> anyhow::Result<InputTensor> {
    let mut shape = Vec::new();
    let mut level = value;
    while let Value::Array(items) = level {
        shape.push(i64::try_from(items.len())?);
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    let mut leaves = Vec::new();
    flatten(value, &mut leaves);
    let expected: i64 = shape.iter().product();
    if shape.is_empty() || leaves.len() as i64 != expected {
        bail!("input '{name}' must be a rectangular nested array, e.g. [[1, 2], [3, 4]]");
    }
    let number = |leaf: &Value| {
        leaf.as_f64()
            .with_context(|| format!("input '{name}' is {datatype}: {leaf} is not a number"))
    };
    let integer = |leaf: &Value| {
        leaf.as_i64()
            .with_context(|| format!("input '{name}' is {datatype}: {leaf} is not an integer"))
    };
    let data = match datatype {
        "FP32" => TensorValues::Fp32(
            leaves
                .iter()
                .map(|leaf| number(leaf).map(|v| v as f32))
                .collect::<anyhow::Result<_>>()?,
        ),
        "FP64" => TensorValues::Fp64(
            leaves
                .iter()
                .map(|l| number(l))
                .collect::<anyhow::Result<_>>()?,
        ),
        "INT32" => TensorValues::Int32(
            leaves
                .iter()
                .map(|leaf| Ok(i32::try_from(integer(leaf)?)?))
                .collect::<anyhow::Result<_>>()?,
        ),
        "INT64" => TensorValues::Int64(
            leaves
                .iter()
                .map(|l| integer(l))
                .collect::<anyhow::Result<_>>()?,
        ),
        "BOOL" => TensorValues::Bool(
            leaves
                .iter()
                .map(|leaf| {
                    leaf.as_bool().with_context(|| {
                        format!("input '{name}' is BOOL: {leaf} is not true or false")
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        "BYTES" => TensorValues::Bytes(
            leaves
                .iter()
                .map(|leaf| match leaf {
                    Value::String(text) => Ok(text.as_bytes().to_vec()),
                    other => bail!("input '{name}' is BYTES: {other} is not a string"),
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        other => bail!("input '{name}' has datatype {other}, which `okla predict` cannot write"),
    };
    Ok(InputTensor::new(name, shape, data))
}

fn flatten<'a>(value: &'a Value, leaves: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, leaves)),
        leaf => leaves.push(leaf),
    }
}

fn values_json(values: &TensorValues) -> Value {
    match values {
        TensorValues::Bool(v) => json!(v),
        TensorValues::Int8(v) => json!(v),
        TensorValues::Int16(v) => json!(v),
        TensorValues::Int32(v) => json!(v),
        TensorValues::Int64(v) => json!(v),
        TensorValues::Uint8(v) => json!(v),
        TensorValues::Uint16(v) => json!(v),
        TensorValues::Uint32(v) => json!(v),
        TensorValues::Uint64(v) => json!(v),
        TensorValues::Fp32(v) => json!(v),
        TensorValues::Fp64(v) => json!(v),
        TensorValues::Bytes(v) => json!(
            v.iter()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .collect::<Vec<_>>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_arrays_become_shaped_tensors() {
        let tensor = input_tensor("x", "FP32", &json!([[1, 2.5], [3, 4]])).unwrap();
        assert_eq!(tensor.shape, vec![2, 2]);
        assert_eq!(tensor.data, TensorValues::Fp32(vec![1.0, 2.5, 3.0, 4.0]));
        let ids = input_tensor("ids", "INT64", &json!([7, 8, 9])).unwrap();
        assert_eq!(ids.data, TensorValues::Int64(vec![7, 8, 9]));
    }

    #[test]
    fn ragged_or_mistyped_input_is_refused_by_name() {
        let ragged = input_tensor("x", "FP32", &json!([[1, 2], [3]])).unwrap_err();
        assert!(ragged.to_string().contains("rectangular"), "{ragged}");
        let fraction = input_tensor("ids", "INT64", &json!([1.5])).unwrap_err();
        assert!(fraction.to_string().contains("ids"), "{fraction}");
        let scalar = input_tensor("x", "FP32", &json!(3)).unwrap_err();
        assert!(scalar.to_string().contains("rectangular"), "{scalar}");
    }
}
