//! The Prometheus text exposition format (0.0.4), written by hand: a family is its
//! HELP, its TYPE and all its samples together, label values escaped. About sixty
//! lines, so no client library (and its registry and global state) is needed for
//! a process that only answers scrapes.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
}

/// One metric family: a name, its help, its type and its samples.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    pub fn new(name: impl Into<String>, kind: Kind, help: impl Into<String>) -> Family {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Add a sample; labels are sorted by name, as the exporter prints them.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Family {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.push((l, value));
        self
    }
}

/// The families as one text body (families without samples are left out).
pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.len() * 160);
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        };
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", f.name);
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for (labels, v) in &f.samples {
            out.push_str(&f.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let val = val
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{k}=\"{val}\"");
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", value(*v));
        }
    }
    out
}

fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_contiguous_and_values_escaped() {
        let mut a = Family::new("pg_x", Kind::Gauge, "line one\nback\\slash");
        a.add(&[("server", "h:1"), ("datname", "we\"ird\\db\n")], 1.5)
            .add(&[("datname", "b"), ("server", "h:1")], f64::NAN);
        let empty = Family::new("pg_empty", Kind::Counter, "none");
        let mut b = Family::new("pg_up", Kind::Gauge, "up");
        b.add(&[], 1.0);
        assert_eq!(
            render(&[a, empty, b]),
            "# HELP pg_x line one\\nback\\\\slash\n# TYPE pg_x gauge\n\
             pg_x{datname=\"we\\\"ird\\\\db\\n\",server=\"h:1\"} 1.5\n\
             pg_x{datname=\"b\",server=\"h:1\"} NaN\n\
             # HELP pg_up up\n# TYPE pg_up gauge\npg_up 1\n"
        );
    }
}
