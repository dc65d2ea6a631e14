using System.Text.Json;
using Microsoft.Data.Sqlite;
using Parley.Hub.Fleet;
using static Parley.Storage.Sqlite.SqlCommands;

namespace Parley.Storage.Sqlite.Fleet;

/// <summary>
/// Fleet instances in their own SQLite file (<c>fleet.db</c>, mode 0600, in the data dir). Arguments and the
/// environment are stored as JSON text; environment values may be secrets and are only ever read back by the
/// supervisor.
/// </summary>
public sealed class SqliteInstanceStore : IInstanceStore
{
    private const string SchemaSql = """
        CREATE TABLE IF NOT EXISTS instances (
            name TEXT PRIMARY KEY, command TEXT NOT NULL, args TEXT NOT NULL, cwd TEXT, env TEXT NOT NULL, port INTEGER,
            health_url TEXT, restart TEXT NOT NULL, desired_running INTEGER NOT NULL, archived_at INTEGER,
            created_by TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, terminal INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
        """;

    // fleet.db files made before instances could run under a terminal lack the column.
    private const string AddTerminalColumnSql = "ALTER TABLE instances ADD COLUMN terminal INTEGER NOT NULL DEFAULT 0";

    private const string Columns = "name, command, args, cwd, env, port, health_url, restart, desired_running, archived_at, created_by, created_at, updated_at, terminal";

    private readonly SerializedConnection _connection;

    private SqliteInstanceStore(SerializedConnection connection) => _connection = connection;

    /// <summary>Opens (creating if needed) the fleet database at <paramref name="path"/>.</summary>
    /// <param name="synchronousFull">fsync every commit (the default durability).</param>
    public static async Task<SqliteInstanceStore> OpenAsync(string path, bool synchronousFull = true, CancellationToken cancellationToken = default)
    {
        return new SqliteInstanceStore(await SerializedConnection.OpenAsync(path, synchronousFull, static c =>
        {
            Execute(c, SchemaSql);
            if (!Query(c, "SELECT name FROM pragma_table_info('instances')", r => r.GetString(0)).Contains("terminal"))
            {
                Execute(c, AddTerminalColumnSql);
            }
        }));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<InstanceRecord>> ListAsync(CancellationToken cancellationToken = default) =>
        _connection.RunAsync<IReadOnlyList<InstanceRecord>>(c => Query(c, $"SELECT {Columns} FROM instances ORDER BY name", Read), cancellationToken);

    /// <inheritdoc />
    public ValueTask<InstanceRecord?> GetAsync(string name, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c => Query(c, $"SELECT {Columns} FROM instances WHERE name = $n", Read, ("$n", name)).FirstOrDefault(), cancellationToken);

    /// <inheritdoc />
    public ValueTask<bool> CreateAsync(InstanceRecord instance, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return _connection.RunAsync(c => NonQuery(c, $"INSERT INTO instances ({Columns}) VALUES ($n, $cmd, $args, $cwd, $env, $port, $health, $restart, $desired, $archived, $by, $at, $up, $terminal) ON CONFLICT (name) DO NOTHING",
            Parameters(instance)) == 1, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> UpdateAsync(InstanceRecord instance, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return _connection.RunAsync(c => NonQuery(c, """
            UPDATE instances SET command = $cmd, args = $args, cwd = $cwd, env = $env, port = $port, health_url = $health, restart = $restart, terminal = $terminal,
                desired_running = $desired, archived_at = $archived, updated_at = $up WHERE name = $n
            """, Parameters(instance)) == 1, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> DeleteAsync(string name, CancellationToken cancellationToken = default) =>
        _connection.RunAsync(c => NonQuery(c, "DELETE FROM instances WHERE name = $n", ("$n", name)) == 1, cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    private static (string, object?)[] Parameters(InstanceRecord r)
    {
        var spec = r.Spec;
        return
        [
            ("$n", r.Name), ("$cmd", spec.Command), ("$args", JsonSerializer.Serialize(spec.Args, FleetStoreJson.Default.IReadOnlyListString)),
            ("$cwd", spec.Cwd), ("$env", JsonSerializer.Serialize(spec.Env, FleetStoreJson.Default.IReadOnlyDictionaryStringString)),
            ("$port", spec.Port), ("$health", spec.HealthUrl), ("$restart", InstanceSpec.PolicyName(spec.Restart)), ("$terminal", spec.Terminal ? 1 : 0),
            ("$desired", r.DesiredRunning ? 1 : 0), ("$archived", r.ArchivedAtMs), ("$by", r.CreatedBy), ("$at", r.CreatedAtMs), ("$up", r.UpdatedAtMs),
        ];
    }

    private static InstanceRecord Read(SqliteDataReader r)
    {
        var policy = InstanceSpec.TryParsePolicy(r.GetString(7), out var parsed) ? parsed : RestartPolicy.Never;
        var spec = new InstanceSpec(
            r.GetString(1),
            JsonSerializer.Deserialize(r.GetString(2), FleetStoreJson.Default.IReadOnlyListString) ?? [],
            r.IsDBNull(3) ? null : r.GetString(3),
            JsonSerializer.Deserialize(r.GetString(4), FleetStoreJson.Default.IReadOnlyDictionaryStringString) ?? new Dictionary<string, string>(),
            r.IsDBNull(5) ? null : r.GetInt32(5),
            r.IsDBNull(6) ? null : r.GetString(6),
            policy,
            r.GetInt64(13) != 0);
        return new InstanceRecord(r.GetString(0), spec, r.GetInt64(8) != 0, r.IsDBNull(9) ? null : r.GetInt64(9), r.GetString(10), r.GetInt64(11), r.GetInt64(12));
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<string>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
internal sealed partial class FleetStoreJson : System.Text.Json.Serialization.JsonSerializerContext;
