using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteHistoryStore
{
    /// <summary>The schema version this build reads and writes (stored in <c>meta</c> as <c>schema_version</c>).</summary>
    public const int SchemaVersion = 1;

    // A WAL file larger than this is truncated back to it after a checkpoint (bytes).
    private const long JournalSizeLimitBytes = 64L * 1024 * 1024;

    private const string CreateMetaSql = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

    private const string CreateSchemaSql = """
        CREATE TABLE IF NOT EXISTS topics(
            topic TEXT PRIMARY KEY,
            head INTEGER NOT NULL,
            first_retained INTEGER NOT NULL,
            last_trimmed_ts INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS messages(
            topic TEXT NOT NULL,
            "offset" INTEGER NOT NULL,
            id TEXT NOT NULL,
            ts INTEGER NOT NULL,
            sender TEXT NOT NULL,
            body TEXT NOT NULL,
            client_id TEXT,
            meta TEXT,
            PRIMARY KEY(topic, "offset")
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX IF NOT EXISTS messages_topic_client_id ON messages(topic, client_id) WHERE client_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS messages_topic_ts ON messages(topic, ts);
        INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', $version);
        INSERT OR IGNORE INTO meta(key, value) VALUES('epoch', $epoch);
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
        if (version is not null && version != expected)
        {
            throw new NotSupportedException($"The history database has schema version {version}; this build supports version {expected}.");
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
