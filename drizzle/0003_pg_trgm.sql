-- Trigram indexes serve the case-insensitive substring search of user names and emails (user_admin).
-- pg_trgm ships with PostgreSQL's contrib and with PGlite (loaded in platform/db/client.ts).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
