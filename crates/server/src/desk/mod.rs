//! The desk: the rules both the JSON API (`http/`) and the pages (`web/`) apply, in one place. Today it
//! decides what each viewer is shown of a ticket ([`views`]).

pub mod views;
