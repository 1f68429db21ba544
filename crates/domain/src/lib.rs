//! mailfwd's domain: the data, the rules of validity, the ports that own the data and
//! the services built on them. No I/O, no runtime, no SQL: adapters bring those.

pub mod access;
pub mod address;
pub mod bounce;
pub mod calendar;
pub mod delivery;
pub mod email;
pub mod expansion;
pub mod import;
pub mod ingest;
pub mod memory;
mod memory_bodies;
mod memory_queue;
pub mod message;
pub mod own_addresses;
pub mod rule;
pub mod rule_store;
pub mod srs;

#[cfg(any(test, feature = "contract"))]
pub mod contract;

pub use address::{AddressError, Domain, EmailAddress};
pub use email::{EmailId, EmailStore, Encoding, Envelope, NewEmail, ReceivedEmail, StoreError};
pub use expansion::{Cut, CutReason, Expansion, ExpansionLimits, Start};
pub use ingest::{
    AcceptedListener, Addressed, Incoming, Ingest, IngestError, IngestLimits, Origin, Transaction,
};
pub use message::{BareLineEndings, MessageError, MessagePolicy};
pub use own_addresses::OwnAddresses;
pub use rule::{InvalidRule, RecipientPattern, Rule};
pub use rule_store::{Invalidation, RuleError, RulePage, RuleQuery, RuleStore};
pub use srs::{Srs, SrsConfigError, SrsError};
