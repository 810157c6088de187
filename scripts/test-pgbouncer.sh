#!/usr/bin/env bash
# The integration tests once more with the app reaching PostgreSQL through PgBouncer in
# transaction pooling mode (the guide's recommendation) and DB_PGBOUNCER=true: each test's
# database is created on the server itself, the app under test connects through the pooler.
# The SQLite halves of the parametrised tests are left out: they never meet PgBouncer and
# `make test` runs them already.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/test-services.sh start)"
export STREAMSPACE_TEST_VIA_PGBOUNCER=1 DB_PGBOUNCER=true
.venv/bin/pytest -q -p no:cacheprovider -k "not sqlite" tests/integration "$@"
