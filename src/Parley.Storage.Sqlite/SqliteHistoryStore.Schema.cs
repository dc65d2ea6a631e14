using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    /// <summary>The schema version this build reads and writes (stored in <c>meta</c> as <c>schema_version</c>).
    /// Version 1 files (topic text in every message key) are migrated to version 2 when opened.</summary>
    public const int SchemaVersion = 2;

    // A WAL file larger than this is truncated back to it after a checkpoint (bytes).
    private const long JournalSizeLimitBytes = 64L * 1024 * 1024;

    private const string CreateMetaSql = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

    // Version 2 layout, chosen for append cost: a commit writes every page it changed to the WAL, so
    // the number of distinct pages a batch touches matters far more than per-row SQL work.
    // - messages is a rowid table in append order (seq): a batch's rows fill the last few pages,
    //   however many topics it spans.
    // - The one per-topic ordering is a narrow (topic_id, offset) index (a batch touches about one
    //   leaf per topic, but a leaf holds hundreds of entries and rarely splits). The client_id index
    //   only holds messages that have one.
    // - There is no (topic, ts) index, which would be a second leaf per topic per batch (it cost
    //   30-40% of append time). Instead max_ts is the running maximum of the topic's timestamps up to
    //   and including each message, so it never decreases with offset and ReadSinceTime finds its
    //   start by binary search over offsets; topics.max_ts is the value at the head.
    // A topic keeps its topic_id forever (topics rows are never deleted).
    private const string CreateTablesSql = """
        CREATE TABLE IF NOT EXISTS topics(
            topic_id INTEGER PRIMARY KEY,
            topic TEXT NOT NULL UNIQUE,
            head INTEGER NOT NULL,
            max_ts INTEGER NOT NULL,
            first_retained INTEGER NOT NULL,
            last_trimmed_ts INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS messages(
            seq INTEGER PRIMARY KEY,
            topic_id INTEGER NOT NULL,
            "offset" INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            max_ts INTEGER NOT NULL,
            id TEXT NOT NULL,
            sender TEXT NOT NULL,
            body TEXT NOT NULL,
            client_id TEXT,
            meta TEXT
        );
        CREATE UNIQUE INDEX IF NOT EXISTS messages_topic_offset ON messages(topic_id, "offset");
        CREATE UNIQUE INDEX IF NOT EXISTS messages_topic_client_id ON messages(topic_id, client_id) WHERE client_id IS NOT NULL;
        """;

    private const string CreateSchemaSql = CreateTablesSql + """
        INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', $version);
        INSERT OR IGNORE INTO meta(key, value) VALUES('epoch', $epoch);
        """;

    // Version 1 -> 2, inside the opening transaction: the old tables are renamed (their indexes dropped
    // first, as the new client_id index reuses a name), copied and dropped. The epoch is kept, so
    // clients keep recovering by offset. Messages are copied in (topic, offset) order; max_ts starts
    // from the retained messages (trimmed ones are gone, which only makes it smaller: still a valid
    // running maximum of what is stored).
    private const string MigrateFromV1Sql = """
        DROP INDEX IF EXISTS messages_topic_client_id;
        DROP INDEX IF EXISTS messages_topic_ts;
        ALTER TABLE topics RENAME TO topics_v1;
        ALTER TABLE messages RENAME TO messages_v1;
        """ + CreateTablesSql + """
        INSERT INTO topics(topic, head, max_ts, first_retained, last_trimmed_ts)
            SELECT t.topic, t.head, coalesce((SELECT max(m.ts) FROM messages_v1 AS m WHERE m.topic = t.topic), 0), t.first_retained, t.last_trimmed_ts
            FROM topics_v1 AS t ORDER BY t.topic;
        INSERT INTO messages(topic_id, "offset", ts, max_ts, id, sender, body, client_id, meta)
            SELECT t.topic_id, m."offset", m.ts, max(m.ts) OVER (PARTITION BY m.topic ORDER BY m."offset"), m.id, m.sender, m.body, m.client_id, m.meta
            FROM messages_v1 AS m JOIN topics AS t ON t.topic = m.topic
            ORDER BY m.topic, m."offset";
        """;

    private const string CountMigratedSql = "SELECT (SELECT count(*) FROM messages_v1) - (SELECT count(*) FROM messages);";

    private const string FinishMigrationSql = """
        DROP TABLE messages_v1;
        DROP TABLE topics_v1;
        UPDATE meta SET value = $version WHERE key = 'schema_version';
        """;

    private const string SelectMetaSql = "SELECT value FROM meta WHERE key = $key;";

    private static string BusyTimeoutPragma(int busyTimeoutMs) =>
        string.Create(CultureInfo.InvariantCulture, $"PRAGMA busy_timeout = {busyTimeoutMs};");

    private static async Task ConfigureWriterAsync(SqliteConnection writer, bool synchronousFull, int busyTimeoutMs, CancellationToken cancellationToken)
    {
        await ExecuteAsync(writer, BusyTimeoutPragma(busyTimeoutMs), cancellationToken);

        await using (var command = writer.CreateCommand())
        {
            command.CommandText = "PRAGMA journal_mode = WAL;";
            var mode = (string?)await command.ExecuteScalarAsync(cancellationToken);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new NotSupportedException($"The database could not be switched to WAL mode (journal_mode is '{mode}').");
            }
        }

        var synchronous = synchronousFull ? "FULL" : "NORMAL";
        var fullFsync = synchronousFull ? "ON" : "OFF";
        await ExecuteAsync(
            writer,
            string.Create(CultureInfo.InvariantCulture, $"PRAGMA synchronous = {synchronous}; PRAGMA fullfsync = {fullFsync}; PRAGMA journal_size_limit = {JournalSizeLimitBytes};"),
            cancellationToken);
    }

    // Creates the schema and the epoch when missing, checks the schema version, and returns the epoch.
    // One IMMEDIATE transaction, so two processes creating the same file cannot both pick an epoch.
    private static async Task<string> EnsureSchemaAsync(SqliteConnection writer, CancellationToken cancellationToken)
    {
        await using var transaction = writer.BeginTransaction(deferred: false);
        await ExecuteAsync(writer, CreateMetaSql, cancellationToken);

        var version = await ReadMetaAsync(writer, "schema_version", cancellationToken);
        var expected = SchemaVersion.ToString(CultureInfo.InvariantCulture);
        if (version == "1")
        {
            await MigrateFromV1Async(writer, expected, cancellationToken);
        }
        else if (version is not null && version != expected)
        {
            throw new NotSupportedException($"The history database has schema version {version}; this build supports version {expected} (and migrates version 1).");
        }

        await using (var command = writer.CreateCommand())
        {
            command.CommandText = CreateSchemaSql;
            command.Parameters.AddWithValue("$version", expected);
            command.Parameters.AddWithValue("$epoch", NewEpoch());
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        var epoch = await ReadMetaAsync(writer, "epoch", cancellationToken)
            ?? throw new InvalidOperationException("The history database has no epoch.");
        await transaction.CommitAsync(cancellationToken);
        return epoch;
    }

    private static async Task MigrateFromV1Async(SqliteConnection writer, string version, CancellationToken cancellationToken)
    {
        await ExecuteAsync(writer, MigrateFromV1Sql, cancellationToken);
        await using (var command = writer.CreateCommand())
        {
            // Every v1 message has a topics row (both are written in one transaction); check anyway
            // rather than drop messages silently.
            command.CommandText = CountMigratedSql;
            if (await command.ExecuteScalarAsync(cancellationToken) is not 0L)
            {
                throw new InvalidOperationException("Migrating the history database from schema version 1 failed: some messages have no topics row. The file was left unchanged.");
            }
        }

        await using (var command = writer.CreateCommand())
        {
            command.CommandText = FinishMigrationSql;
            command.Parameters.AddWithValue("$version", version);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    private static string NewEpoch() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private static async Task<string?> ReadMetaAsync(SqliteConnection connection, string key, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = SelectMetaSql;
        command.Parameters.AddWithValue("$key", key);
        return (string?)await command.ExecuteScalarAsync(cancellationToken);
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
