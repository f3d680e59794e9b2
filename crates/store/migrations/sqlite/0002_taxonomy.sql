-- The taxonomy the admin owns: ticket categories (with descriptions and example texts that guide the AI)
-- and descriptions of skills. A fresh install starts with a default taxonomy for software/IT support.

CREATE TABLE categories (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    examples    TEXT NOT NULL DEFAULT '[]',
    position    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE skill_descriptions (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);

INSERT INTO categories (name, description, examples, position) VALUES
  ('bug', 'Something that used to work, or should work, behaves wrongly: errors, crashes, wrong results.',
   '["The export button throws error 500", "App crashes when I open settings"]', 1),
  ('incident', 'A service is down or degraded for many people right now: outage, data loss, security breach.',
   '["The whole site is down for all users", "We cannot log in since the deploy, production is affected"]', 2),
  ('account & access', 'Signing in, passwords, two-factor, permissions, invitations and account changes.',
   '["I forgot my password and the reset mail never arrives", "Please give Maria admin rights"]', 3),
  ('billing', 'Invoices, payments, refunds, plans, prices and subscriptions.',
   '["I was charged twice this month", "Please send the invoice for March"]', 4),
  ('feature request', 'A wish for something the product does not do yet, or an improvement to how it works.',
   '["It would be great to export reports as PDF", "Please add dark mode"]', 5),
  ('how-to', 'How to do something the product already supports: set-up, configuration, usage.',
   '["How do I connect my calendar?", "Where can I change the notification settings?"]', 6),
  ('question', 'A general question that is not a problem report: policies, plans, product information.',
   '["Do you offer a discount for non-profits?", "Is my data stored in the EU?"]', 7);
