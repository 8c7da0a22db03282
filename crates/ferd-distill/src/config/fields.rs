//! Any serializable config by its dotted field paths: [`with_field`] sets one (`--set KEY=VALUE`)
//! and [`field_docs`] lists every one with its value and the doc comment of its field, read from
//! the config's JSON Schema (`--list-config`). Generic: FERD's and the teacher's configs use
//! them alike.

use serde::Serialize;

use crate::error::{DistillError, Result};

/// `config` with the field at the dotted path `key` (`student.lr`, `synthesis.weights.uni`,
/// `student.ikl`) set to `value`, for `--set KEY=VALUE` on the command line. `value` is read as
/// JSON (`0.05`, `true`, `[0.5, 0.999]`, `{"kind": "class_prior"}`), or else as a plain string.
/// An unknown key or a value of the wrong type is an error naming the key; the caller checks
/// the result as a whole.
///
/// # Examples
/// ```
/// use ferd_distill::config::with_field;
/// use ferd_distill::{Budget, FerdConfig, FerdMethod};
///
/// let config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
/// let changed = with_field(&config, "student.utae.gamma", "0.5").unwrap();
/// assert_eq!(changed.student.utae.gamma, 0.5);
/// assert!(with_field(&config, "student.gama", "0.5").is_err());
/// ```
pub fn with_field<T: Serialize + serde::de::DeserializeOwned>(
    config: &T,
    key: &str,
    value: &str,
) -> Result<T> {
    let bad = |m: String| DistillError::Config(m);
    let mut tree = serde_json::to_value(config).expect("a config serializes");
    let mut slot = &mut tree;
    for part in key.split('.') {
        let known = match &*slot {
            serde_json::Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => String::new(),
        };
        slot = match slot {
            serde_json::Value::Object(map) => map.get_mut(part),
            _ => None,
        }
        .ok_or_else(|| {
            bad(if known.is_empty() {
                format!("`{key}`: `{part}` is not a field")
            } else {
                format!("`{key}`: no field `{part}` (known here: {known})")
            })
        })?;
    }
    *slot = serde_json::from_str(value)
        .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    serde_json::from_value(tree).map_err(|e| bad(format!("`{key}` = `{value}`: {e}")))
}

/// One field of a configuration as the command line shows it (`--list-config`): its dotted
/// `config.json` path (the key of `--set`), its value, and its doc comment.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDoc {
    /// The dotted path, e.g. `student.utae.gamma`.
    pub key: String,
    /// The current value.
    pub value: serde_json::Value,
    /// The field's doc comment.
    pub doc: String,
    /// For an enum, its alternatives as `name: doc` (empty otherwise).
    pub alternatives: Vec<String>,
}

/// Every field of `config`, by dotted key in alphabetical order, with the doc comment the
/// field has in the source (read from the type's JSON Schema): one list serves as `--help` for
/// `--set`. A field holding an enum (such as `reweighting.strategy`) is listed whole, with its
/// alternatives, and then by its own fields.
///
/// # Examples
/// ```
/// use ferd_distill::config::field_docs;
/// use ferd_distill::{Budget, FerdConfig, FerdMethod};
///
/// let config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
/// let fields = field_docs(&config);
/// let gamma = fields.iter().find(|f| f.key == "student.utae.gamma").unwrap();
/// assert!(gamma.doc.contains("gamma"));
/// ```
pub fn field_docs<T: Serialize + schemars::JsonSchema>(config: &T) -> Vec<FieldDoc> {
    let schema = schemars::schema_for!(T);
    let root = schema.as_value();
    let schema = Schema {
        defs: root.get("$defs"),
    };
    let value = serde_json::to_value(config).expect("a config serializes");
    let mut fields = Vec::new();
    schema.walk(&value, root, "", &mut fields);
    fields
}

/// The `$defs` of a JSON Schema that the walk resolves references against.
struct Schema<'a> {
    defs: Option<&'a serde_json::Value>,
}

impl<'a> Schema<'a> {
    /// `node`, or the definition it refers to.
    fn resolve(&self, node: &'a serde_json::Value) -> &'a serde_json::Value {
        node.get("$ref")
            .and_then(serde_json::Value::as_str)
            .and_then(|r| self.defs?.get(r.trim_start_matches("#/$defs/")))
            .unwrap_or(node)
    }

    /// The alternatives of an enum, as `name: doc` lines (empty for anything else).
    fn alternatives(&self, node: &'a serde_json::Value) -> Vec<String> {
        let Some(variants) = self.resolve(node).get("oneOf").and_then(|v| v.as_array()) else {
            return Vec::new();
        };
        variants
            .iter()
            .map(|v| {
                let v = self.resolve(v);
                let props = v.get("properties").and_then(|p| p.as_object());
                let name = v
                    .get("const")
                    .cloned()
                    .or_else(|| props?.values().find_map(|p| p.get("const").cloned()))
                    .map(|c| c.as_str().map_or(c.to_string(), str::to_string))
                    .or_else(|| props.filter(|p| p.len() == 1)?.keys().next().cloned())
                    .unwrap_or_default();
                format!("{name}: {}", description(v))
            })
            .collect()
    }

    /// The fields the schema `node` gives `value`: a struct's, or those of the enum variant
    /// that `value` is.
    fn properties(
        &self,
        value: &serde_json::Value,
        node: &'a serde_json::Value,
    ) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
        let node = self.resolve(node);
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            return Some(props);
        }
        let object = value.as_object()?;
        node.get("oneOf")?.as_array()?.iter().find_map(|v| {
            let props = self.resolve(v).get("properties")?.as_object()?;
            let fits = object.iter().all(|(k, x)| {
                props
                    .get(k)
                    .is_some_and(|p| p.get("const").is_none_or(|c| c == x))
            });
            fits.then_some(props)
        })
    }

    fn walk(
        &self,
        value: &serde_json::Value,
        node: &'a serde_json::Value,
        prefix: &str,
        out: &mut Vec<FieldDoc>,
    ) {
        let (Some(object), Some(props)) = (value.as_object(), self.properties(value, node)) else {
            return;
        };
        for (name, field) in object {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let sub = props.get(name);
            if sub.is_some_and(|s| s.get("const").is_some()) {
                continue; // an enum's tag: listed with the enum
            }
            let doc = sub.map_or_else(String::new, |s| {
                let own = description(s);
                if own.is_empty() {
                    description(self.resolve(s))
                } else {
                    own
                }
            });
            let alternatives = sub.map(|s| self.alternatives(s)).unwrap_or_default();
            let nested = sub.and_then(|s| self.properties(field, s)).is_some();
            if !nested || !alternatives.is_empty() {
                out.push(FieldDoc {
                    key: key.clone(),
                    value: field.clone(),
                    doc,
                    alternatives: alternatives.clone(),
                });
            }
            if let Some(sub) = sub.filter(|_| nested) {
                self.walk(field, sub, &key, out);
            }
        }
    }
}

/// A schema node's description on one line.
fn description(node: &serde_json::Value) -> String {
    node.get("description")
        .and_then(serde_json::Value::as_str)
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;
    use crate::{Budget, FerdConfig, FerdMethod, TeacherPreset};

    /// Every path from the root of `value` to a non-object value, found without the schema.
    fn leaf_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value.as_object() {
            Some(object) => {
                for (k, v) in object {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_paths(v, &key, out);
                }
            }
            None => out.push(prefix.to_string()),
        }
    }

    /// Every field is listed with a doc, and `--set` with its own value changes nothing.
    fn check_listing<T>(config: &T, tags: &[&str])
    where
        T: Serialize + serde::de::DeserializeOwned + schemars::JsonSchema + PartialEq + Debug,
    {
        let fields = field_docs(config);
        let mut leaves = Vec::new();
        leaf_paths(&serde_json::to_value(config).unwrap(), "", &mut leaves);
        for leaf in leaves.iter().filter(|l| !tags.contains(&l.as_str())) {
            assert!(
                fields.iter().any(|f| &f.key == leaf),
                "{leaf} is not listed"
            );
        }
        for field in &fields {
            assert!(!field.doc.is_empty(), "{} has no doc", field.key);
            let same = with_field(config, &field.key, &field.value.to_string()).unwrap();
            assert_eq!(&same, config, "{}", field.key);
        }
    }

    #[test]
    fn every_field_of_every_preset_is_listed_with_its_doc() {
        for method in [FerdMethod::Ferd, FerdMethod::FerdOfficialCode] {
            let config = FerdConfig::preset(Budget::Fmnist, method);
            check_listing(
                &config,
                &["reweighting.strategy.strategy", "student.ikl.kind"],
            );
        }
        for preset in TeacherPreset::ALL {
            check_listing(&preset.recipe().config, &[]);
        }
    }

    #[test]
    fn docs_are_the_doc_comments_and_enums_list_their_alternatives() {
        let config = FerdConfig::preset(Budget::Fmnist, FerdMethod::FerdOfficialCode);
        let fields = field_docs(&config);
        let doc = |key: &str| &fields.iter().find(|f| f.key == key).unwrap().doc;
        // The doc comment of `UtaeConfig::gamma`, its two lines joined.
        assert_eq!(
            doc("student.utae.gamma"),
            "Weight `gamma` of the uniformity term (paper sweep: 0.1 to 0.5 best; ferd 0.3; the \
             released code runs 0)."
        );
        let strategy = fields
            .iter()
            .find(|f| f.key == "reweighting.strategy")
            .unwrap();
        let starts: Vec<&str> = strategy
            .alternatives
            .iter()
            .map(|a| &a[..a.find(" rule").or(a.find(": No")).unwrap_or(a.len())])
            .collect();
        assert_eq!(
            starts,
            [
                "softmax: The paper's",
                "min_max: The official code's",
                "uniform"
            ],
            "{:?}",
            strategy.alternatives
        );
        // The fields of the variant in use are listed too, with their own docs.
        assert_eq!(
            doc("reweighting.strategy.p_max"),
            "Weight of the most fragile class before normalization."
        );
    }
}
