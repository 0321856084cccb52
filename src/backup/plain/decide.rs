//! From the items of a scanned file to a [`Plan`]: which database section is kept,
//! which statements are removed or pointed at the scratch database, and which
//! refuse the whole file.

use super::classify::*;
use super::{refuse, Edit, Plan};
use crate::error::Fail;

pub(super) fn decide(items: Vec<Item>, want: Option<&str>) -> anyhow::Result<Plan> {
    let mut sections: Vec<String> = Vec::new();
    for it in &items {
        if let Kind::Connect(db) = &it.kind {
            if !sections.contains(db) {
                sections.push(db.clone());
            }
        }
    }
    let roles_first = items
        .iter()
        .any(|i| i.ctx.is_none() && matches!(i.kind, Kind::Cluster(_)));
    let cluster = sections.len() > 1 || (!sections.is_empty() && roles_first);
    let section = match (sections.as_slice(), want) {
        ([], _) => None,
        (_, Some(w)) if sections.iter().any(|s| s == w) => Some(w.to_string()),
        ([one], _) if !cluster => Some(one.clone()),
        _ => {
            let names = sections
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let what = if cluster {
                "is a whole-cluster dump (pg_dumpall): it holds roles and the databases"
            } else {
                "holds the databases"
            };
            let msg = match want {
                Some(w) => format!("this SQL file {what} {names}, not `{w}`"),
                None => format!("this SQL file {what} {names}"),
            };
            return Err(Fail::new(msg)
                .hint("pgbox restores one database from it: pass `--db NAME` to restore that database's section in place of the database of that name; roles are not restored from it")
                .into());
        }
    };
    let mut plan = Plan {
        sections,
        section: section.clone(),
        cluster,
        ..Plan::default()
    };
    let ours = |ctx: &Option<String>| ctx.is_none() || *ctx == section;
    // Per item: None = keep, Some(None) = delete, Some(Some((before, after))) = rename.
    type Decision = Option<Option<(String, String)>>;
    let mut decisions: Vec<Decision> = Vec::with_capacity(items.len());
    for it in &items {
        let d: Decision = match &it.kind {
            Kind::Plain => (!ours(&it.ctx)).then_some(None),
            Kind::Copy { table, rows } => {
                if ours(&it.ctx) {
                    *plan.tables.entry(table.clone()).or_insert(0) += rows;
                    None
                } else {
                    Some(None)
                }
            }
            Kind::Connect(_) | Kind::Restrict => Some(None),
            Kind::Meta(m) => {
                return Err(refuse(
                    it.first,
                    &format!("`{m}`"),
                    "is a psql command that could act outside the database being restored",
                ))
            }
            Kind::Outside(what) => {
                return Err(refuse(it.first, what, "reaches outside the database"))
            }
            Kind::Cluster(what) => {
                if cluster && it.ctx.is_none() {
                    Some(None)
                } else {
                    return Err(refuse(
                        it.first,
                        what,
                        "changes the whole server, not one database",
                    ));
                }
            }
            Kind::Database {
                verb,
                name,
                before,
                after,
                what,
            } => {
                let mine = Some(name) == section.as_ref();
                match (mine, verb) {
                    (true, DbVerb::Create | DbVerb::Drop) => Some(None),
                    (true, DbVerb::Property) => Some(Some((before.clone(), after.clone()))),
                    (false, _) if cluster => Some(None),
                    (false, _) => {
                        return Err(refuse(
                            it.first,
                            &format!("{what} `{name}`"),
                            "acts on another database",
                        ))
                    }
                }
            }
        };
        decisions.push(d);
    }
    // Edits must not cut a line that also holds something kept.
    for (i, it) in items.iter().enumerate() {
        if decisions[i].is_none() {
            continue;
        }
        let clash = |j: usize| {
            decisions[j].is_none() && (items[j].last >= it.first && items[j].first <= it.last)
        };
        if (i > 0 && clash(i - 1)) || (i + 1 < items.len() && clash(i + 1)) {
            return Err(refuse(
                it.first,
                "a statement that pgbox must leave out",
                "shares its line with one it keeps",
            ));
        }
    }
    for (it, d) in items.iter().zip(decisions) {
        match d {
            None => {}
            Some(None) => match plan.edits.last_mut() {
                Some(Edit::Delete { last, .. }) if *last + 1 >= it.first => {
                    *last = (*last).max(it.last)
                }
                _ => plan.edits.push(Edit::Delete {
                    first: it.first,
                    last: it.last,
                }),
            },
            Some(Some((before, after))) => plan.edits.push(Edit::Rename {
                first: it.first,
                last: it.last,
                before,
                after,
            }),
        }
    }
    Ok(plan)
}
