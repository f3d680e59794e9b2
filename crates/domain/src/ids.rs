//! Typed identifiers and timestamps. With the `sqlx` feature they are stored and read as themselves on
//! both backends (the ids as UUIDs; a timestamp on SQLite as fixed-width RFC 3339 text with microseconds,
//! so comparing and ordering the text compares and orders the instants).

use chrono::{DateTime, Utc};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// Identifies an account.
    UserId
);
typed_id!(
    /// Identifies a ticket (its `number` is the human-friendly name).
    TicketId
);

/// A UTC instant, to the microsecond.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn now() -> Self {
        // Microseconds: what PostgreSQL keeps, so both backends read back the same instant.
        let now = Utc::now();
        Self(chrono::DurationRound::duration_trunc(now, chrono::Duration::microseconds(1)).unwrap_or(now))
    }
}

impl std::ops::Add<chrono::Duration> for Ts {
    type Output = Ts;
    fn add(self, d: chrono::Duration) -> Ts {
        Ts(self.0 + d)
    }
}

#[cfg(feature = "sqlx")]
mod stored {
    use chrono::{DateTime, SecondsFormat, Utc};
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};

    use super::Ts;

    impl Type<Sqlite> for Ts {
        fn type_info() -> <Sqlite as Database>::TypeInfo {
            <String as Type<Sqlite>>::type_info()
        }
        fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
            <DateTime<Utc> as Type<Sqlite>>::compatible(ty)
        }
    }

    impl Encode<'_, Sqlite> for Ts {
        fn encode_by_ref(&self, buf: &mut <Sqlite as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
            Encode::<Sqlite>::encode(self.0.to_rfc3339_opts(SecondsFormat::Micros, true), buf)
        }
    }

    impl<'r> Decode<'r, Sqlite> for Ts {
        fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
            <DateTime<Utc> as Decode<Sqlite>>::decode(value).map(Ts)
        }
    }

    impl Type<Postgres> for Ts {
        fn type_info() -> <Postgres as Database>::TypeInfo {
            <DateTime<Utc> as Type<Postgres>>::type_info()
        }
    }

    impl Encode<'_, Postgres> for Ts {
        fn encode_by_ref(&self, buf: &mut <Postgres as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
            Encode::<Postgres>::encode_by_ref(&self.0, buf)
        }
    }

    impl<'r> Decode<'r, Postgres> for Ts {
        fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
            <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Ts)
        }
    }
}
