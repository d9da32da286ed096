CREATE TABLE "user_import_batches" (
	"import_id" uuid NOT NULL,
	"batch" integer NOT NULL,
	"tenant_id" uuid NOT NULL,
	"created" integer DEFAULT 0 NOT NULL,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "user_import_batches_import_id_batch_pk" PRIMARY KEY("import_id","batch")
);
