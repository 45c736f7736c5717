"""A real multi-section PRD (and an edit of it) for the planner, command and API tests."""

from __future__ import annotations

ACCOUNTS = """\
# Accounts PRD

## Overview
Teams need accounts so that each member signs in with their own identity.

## 1. Data model
Store users and sessions in Postgres.

1. Users table with email and password hash [P1]
2. Sessions table (depends on #1)

Acceptance criteria:
- migrations run forward and back
- a unique index on email

## 2. Sign-in flow
Depends on section 1.

### Login form
- [ ] Email and password fields
- [ ] Error message on a bad password (blocked by "Email and password fields")

### Password reset
1. Reset email (after #1)
2. Reset page depends on Reset email
3. Expire reset links after an hour

## 3. Documentation
Write the user guide for sign-in. Blocked by Sign-in flow.

## 4. Load tests
Check sign-in under load (depends on Documentation and on "Sessions table").

## Open questions
- Single sign-on?
"""

# The same document edited: a reworded item (same place, same number), a new item, an item
# removed (Expire reset links), and a changed dependency.
ACCOUNTS_EDITED = (
    ACCOUNTS.replace(
        "1. Users table with email and password hash [P1]",
        "1. Users table with email, display name and password hash [P1]",
    )
    .replace("3. Expire reset links after an hour\n", "")
    .replace(
        "2. Sessions table (depends on #1)\n",
        "2. Sessions table (depends on #1)\n3. Audit log of sign-ins (depends on #2)\n",
    )
)
