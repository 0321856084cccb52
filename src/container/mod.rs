//! The server's container and what pgbox runs inside it: the spec, labels and
//! ownership check (`spec`), the image it runs (`image`), the typed `pgbox-ctl`
//! client with the maintenance gate (`ctl`), and psql sessions as the superuser
//! (`psql`). Everything here sits on `engine` and knows nothing of commands.

pub mod ctl;
pub mod image;
pub mod patroni;
pub mod psql;
pub mod spec;
