//! What pgbox runs inside the server's container, in one place: psql sessions as
//! the superuser (`psql`). The container's own spec, labels and control verbs join
//! this module as the layers settle.

pub mod ctl;
pub mod psql;
