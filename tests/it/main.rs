//! pgbox's integration tests: one crate driving the real binary.
//!
//! `cli` needs no engine (help, config errors, missing engine, no TTY,
//! completions). `e2e` drives a real container engine and fails, with the
//! command that starts one, when none answers; it never skips.

mod backup;
mod backup_shape;
mod cli;
mod cluster;
mod cluster_kube;
mod cluster_ops;
mod config;
mod container;
mod e2e;
mod engine_trips;
mod fallback_safety;
mod generate;
mod interrupts;
mod k8s;
mod lifecycle;
mod loud_schedule;
mod majors;
mod migrate;
mod observe;
mod observe_followups;
mod offsite;
mod offsite_faults;
mod offsite_pitr;
mod perf;
mod pitr_archive;
mod pitr_base;
mod pitr_into_new;
mod pitr_restore;
mod pitr_safety;
mod pooler;
mod restore_perf;
mod restore_safety;
mod s3_support;
mod schedule;
mod small_defects;
mod support;
mod upgrade;
mod upgrade_pgupgrade;
