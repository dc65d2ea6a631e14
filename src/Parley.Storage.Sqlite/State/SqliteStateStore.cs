using System.Text;
using Microsoft.Data.Sqlite;
using Parley.Hub.State;
using static Parley.Storage.Sqlite.SqlCommands;

namespace Parley.Storage.Sqlite.State;

/// <summary>
/// Shared key-value state in its own SQLite file (<c>state.db</c> beside the history), so state writes
/// never wait behind the message writer. Each write is one immediate transaction: the version check,
/// the budget check, the entry and the namespace's revision commit together.
/// </summary>
public sealed class SqliteStateStore : IStateStore
{
    private const string SchemaSql = """
        CREATE TABLE IF NOT EXISTS state_namespaces (
            ns TEXT PRIMARY KEY, revision INTEGER NOT NULL, keys INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS state_entries (
            ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, size INTEGER NOT NULL, version INTEGER NOT NULL,
            author TEXT NOT NULL, updated_at INTEGER NOT NULL, revision INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
        """;

    private const string EntryColumns = "key, value, version, author, updated_at, revision";

    private readonly SerializedConnection _connection;

    private SqliteStateStore(SerializedConnection connection) => _connection = connection;

    /// <summary>Opens (creating if needed) the state database at <paramref name="path"/>.</summary>
    /// <param name="synchronousFull">fsync every commit (the default durability); false trades the last commits on power loss for speed.</param>
    public static async Task<SqliteStateStore> OpenAsync(string path, bool synchronousFull = true, CancellationToken cancellationToken = default)
    {
        return new SqliteStateStore(await SerializedConnection.OpenAsync(path, synchronousFull, static c => Execute(c, SchemaSql)));
    }

    public ValueTask<StateSnapshot> LoadAsync(string ns, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: true); // one read snapshot for the entries and the revision
            var entries = Query(c, $"SELECT {EntryColumns} FROM state_entries WHERE ns = $ns ORDER BY key", ReadEntry, ("$ns", ns));
            var revision = Scalar(c, "SELECT revision FROM state_namespaces WHERE ns = $ns", ("$ns", ns)) is long r ? r : 0;
            return new StateSnapshot(revision, entries);
        }, cancellationToken);

    public ValueTask<StateEntry?> GetAsync(string ns, string key, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c => Query(c, $"SELECT {EntryColumns} FROM state_entries WHERE ns = $ns AND key = $k", ReadEntry, ("$ns", ns), ("$k", key)).FirstOrDefault(), cancellationToken);

    public ValueTask<StateWriteResult> SetAsync(string ns, string key, string valueJson, long? expectedVersion, string author, long nowMs, StateLimits limits, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            var current = Current(c, ns, key);
            if (!Matches(expectedVersion, current))
            {
                return new StateWriteResult(StateWriteOutcome.Conflict, null, current?.Version ?? 0);
            }
            var (revision, keys, bytes) = Namespace(c, ns);
            var size = Encoding.UTF8.GetByteCount(key) + Encoding.UTF8.GetByteCount(valueJson) + StateLimits.EntryOverheadBytes;
            keys += current is null ? 1 : 0;
            bytes += size - (current?.Size ?? 0);
            if (keys > limits.MaxKeys || bytes > limits.MaxBytes)
            {
                return new StateWriteResult(StateWriteOutcome.Full, null, current?.Version ?? 0);
            }
            revision++;
            var entry = new StateEntry(key, valueJson, (current?.Version ?? 0) + 1, author, nowMs, revision);
            NonQuery(c, """
                INSERT INTO state_entries (ns, key, value, size, version, author, updated_at, revision) VALUES ($ns, $k, $v, $s, $ver, $a, $t, $r)
                ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, size = excluded.size, version = excluded.version,
                    author = excluded.author, updated_at = excluded.updated_at, revision = excluded.revision
                """, ("$ns", ns), ("$k", key), ("$v", valueJson), ("$s", size), ("$ver", entry.Version), ("$a", author), ("$t", nowMs), ("$r", revision));
            SaveNamespace(c, ns, revision, keys, bytes);
            tx.Commit();
            return new StateWriteResult(StateWriteOutcome.Written, entry, entry.Version);
        }, cancellationToken);

    public ValueTask<StateWriteResult> DeleteAsync(string ns, string key, long? expectedVersion, string author, long nowMs, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            var current = Current(c, ns, key);
            if (current is null)
            {
                return new StateWriteResult(StateWriteOutcome.NotFound, null, 0);
            }
            if (!Matches(expectedVersion, current))
            {
                return new StateWriteResult(StateWriteOutcome.Conflict, null, current.Version);
            }
            var (revision, keys, bytes) = Namespace(c, ns);
            revision++;
            NonQuery(c, "DELETE FROM state_entries WHERE ns = $ns AND key = $k", ("$ns", ns), ("$k", key));
            SaveNamespace(c, ns, revision, keys - 1, bytes - current.Size);
            tx.Commit();
            return new StateWriteResult(StateWriteOutcome.Written, new StateEntry(key, current.Value, current.Version, author, nowMs, revision), current.Version);
        }, cancellationToken);

    public ValueTask<int> RenameNamespaceAsync(string from, string to, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c =>
        {
            using var tx = c.BeginTransaction(deferred: false);
            var (fromRevision, _, _) = Namespace(c, from);
            var (toRevision, _, _) = Namespace(c, to);
            var moved = NonQuery(c, "UPDATE OR IGNORE state_entries SET ns = $to WHERE ns = $from", ("$to", to), ("$from", from));
            NonQuery(c, "DELETE FROM state_entries WHERE ns = $from", ("$from", from));
            NonQuery(c, "DELETE FROM state_namespaces WHERE ns = $from", ("$from", from));
            var (keys, bytes) = Query(c, "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM state_entries WHERE ns = $to", static r => (r.GetInt64(0), r.GetInt64(1)), ("$to", to))[0];
            if (keys > 0 || toRevision > 0)
            {
                SaveNamespace(c, to, fromRevision + toRevision, keys, bytes);
            }
            tx.Commit();
            return moved;
        }, cancellationToken);

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    private sealed record CurrentEntry(long Version, long Size, string Value);

    private static CurrentEntry? Current(SqliteConnection c, string ns, string key) =>
        Query(c, "SELECT version, size, value FROM state_entries WHERE ns = $ns AND key = $k",
            static r => new CurrentEntry(r.GetInt64(0), r.GetInt64(1), r.GetString(2)), ("$ns", ns), ("$k", key)).FirstOrDefault();

    // null: unconditional; 0: only when absent; N: only when the current version is N.
    private static bool Matches(long? expected, CurrentEntry? current) => expected switch
    {
        null => true,
        0 => current is null,
        var v => current?.Version == v,
    };

    private static (long Revision, long Keys, long Bytes) Namespace(SqliteConnection c, string ns) =>
        Query(c, "SELECT revision, keys, bytes FROM state_namespaces WHERE ns = $ns", static r => (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2)), ("$ns", ns))
            is [var row] ? row : (0, 0, 0);

    private static void SaveNamespace(SqliteConnection c, string ns, long revision, long keys, long bytes) =>
        NonQuery(c, """
            INSERT INTO state_namespaces (ns, revision, keys, bytes) VALUES ($ns, $r, $k, $b)
            ON CONFLICT (ns) DO UPDATE SET revision = excluded.revision, keys = excluded.keys, bytes = excluded.bytes
            """, ("$ns", ns), ("$r", revision), ("$k", keys), ("$b", bytes));

    private static StateEntry ReadEntry(SqliteDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetInt64(4), r.GetInt64(5));
}
