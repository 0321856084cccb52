//! A small YAML writer for the Kubernetes objects pgbox builds as JSON values.
//!
//! The objects are built as `serde_json::Value` so the tests validate exactly what
//! is written against JSON schemas; this turns them into block-style YAML that a
//! person can read and edit. Every string is written double-quoted with JSON's
//! escapes (a subset of YAML's), so no value is ever read back as a number, a
//! boolean or a null; a multi-line string (a script) becomes a literal block.

use serde_json::Value;

/// One object as a YAML document body (no `---`).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        k.to_string()
    } else {
        serde_json::to_string(k).expect("a string serialises")
    }
}

/// A scalar, or an empty collection, on one line; `indent` is the block's indent
/// for a literal block scalar.
fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::String(s) if is_block(s) => {
            let pad = " ".repeat(indent + 2);
            let mut b = String::from("|");
            for line in s.trim_end_matches('\n').split('\n') {
                b.push('\n');
                if !line.is_empty() {
                    b.push_str(&pad);
                    b.push_str(line);
                }
            }
            b
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => serde_json::to_string(other).expect("a value serialises"),
    }
}

/// Multi-line text that a literal block keeps byte for byte: one final newline,
/// no leading space on the first line, no tabs or trailing spaces that YAML drops.
fn is_block(s: &str) -> bool {
    s.contains('\n')
        && s.ends_with('\n')
        && !s.ends_with("\n\n")
        && !s.starts_with([' ', '\n'])
        && !s.contains('\r')
        && s.lines().all(|l| !l.ends_with([' ', '\t']))
}

fn complex(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        out.push_str(&pad);
        out.push_str(&key(k));
        out.push(':');
        node_after_key(out, v, indent);
    }
}

fn node_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(inner) if !inner.is_empty() => {
            out.push('\n');
            map(out, inner, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(out, a, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent));
            out.push('\n');
        }
    }
}

fn seq(out: &mut String, a: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for v in a {
        out.push_str(&pad);
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first key on the dash's line, the rest aligned under it.
                let mut first = true;
                for (k, val) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&pad);
                        out.push_str("  ");
                    }
                    out.push_str(&key(k));
                    out.push(':');
                    node_after_key(out, val, indent + 2);
                }
            }
            v if complex(v) => {
                out.push('\n');
                if let Value::Array(inner) = v {
                    seq(out, inner, indent + 2);
                }
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent));
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_with_quoted_strings_and_literal_scripts() {
        let v = json!({
            "apiVersion": "v1",
            "n": 1,
            "yes": "on",
            "list": [{"a": "1", "b": {"c": true}}, "x", []],
            "empty": {},
            "script": "#!/bin/sh\necho 'a: b'\n  indented\n",
        });
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "apiVersion: \"v1\"\nempty: {}\nlist:\n  - a: \"1\"\n    b:\n      c: true\n  - \"x\"\n  - []\n\"n\": 1\nscript: |\n  #!/bin/sh\n  echo 'a: b'\n    indented\n\"yes\": \"on\"\n"
        );
        // A YAML parser reads back exactly the value.
        let back: Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(back, v);
        let script = json!({"s": crate::deploy::k8s::restore_script().unwrap()});
        assert!(is_block(script["s"].as_str().unwrap()));
        assert_eq!(
            serde_yaml::from_str::<Value>(&to_yaml(&script)).unwrap(),
            script
        );
    }
}
