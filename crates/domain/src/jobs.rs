//! The background work the workflow queues: each kind of job, and the states a job moves through.

use crate::string_enum;

string_enum!(
    /// What a queued job does; its wire name is what the queue stores and the admin pages show.
    JobKind, "kind" {
        UserSignedUp => "user.signed_up",
        TicketCreated => "ticket.created",
        TicketRoute => "ticket.route",
        TicketNotify => "ticket.notify",
        TicketResolved => "ticket.resolved",
        TicketVectors => "ticket.vectors",
        CommentCreated => "comment.created",
        EmailSend => "email.send",
        SlaCheck => "sla.check",
        AiRetrain => "ai.retrain",
        AiVectors => "ai.vectors",
        AiFinetune => "ai.finetune",
        MailIngest => "mail.ingest",
        MailPoll => "mail.poll",
        KbPropose => "kb.propose",
        MailAnswer => "mail.answer",
        TicketSummarize => "ticket.summarize",
        RulesRun => "rules.run",
        WebhookDeliver => "webhook.deliver",
    }
);

impl JobKind {
    /// How many times a job of this kind is tried before it is dead. A webhook's delivery is retried for
    /// about an hour (2 s doubling, 12 attempts), so a receiver that is down for a while misses nothing.
    pub fn max_attempts(self) -> i32 {
        match self {
            JobKind::WebhookDeliver => 12,
            _ => 8,
        }
    }
}

string_enum!(
    /// Where a job is: waiting (or waiting to be retried), leased to a worker, done, or out of attempts.
    JobState, "state" { Queued => "queued", Running => "running", Succeeded => "succeeded", Dead => "dead" }
);

impl JobState {
    /// The states a job waits or stalls in: what the queue metrics and the admin page count.
    pub const PENDING: [JobState; 3] = [JobState::Queued, JobState::Running, JobState::Dead];
}

string_enum!(
    /// What became of a received message: waiting to be turned into a ticket or a reply, turned into one,
    /// ignored (an auto-reply or a bounce: never answered), refused with a reason (kept for an admin to
    /// retry or dismiss), or dismissed.
    InboundState, "state" {
        Stored => "stored",
        Ingested => "ingested",
        Ignored => "ignored",
        Rejected => "rejected",
        Dismissed => "dismissed",
    }
);
