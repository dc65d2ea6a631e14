using Microsoft.Data.Sqlite;

namespace Parley.Storage.Sqlite;

/// <summary>
/// One SQLite connection used by one operation at a time, each on the thread pool: callers (possibly
/// socket I/O threads) never wait on disk on their own thread. For stores whose writes are small and
/// rare next to the history's (identity, state).
/// </summary>
internal sealed class SerializedConnection(SqliteConnection connection) : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _disposed;

    // How long a write waits for another process's lock before it fails. Microsoft.Data.Sqlite retries a busy
    // statement for the command timeout (30 s unless told) on top of SQLite's busy_timeout: the two are kept equal.
    private const int BusyTimeoutSeconds = 5;

    /// <summary>Opens <paramref name="path"/> (creating it, mode 0600 when new) in WAL mode with the given durability.</summary>
    public static SqliteConnection Open(string path, bool synchronousFull)
    {
        var fresh = !File.Exists(path);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, Mode = SqliteOpenMode.ReadWriteCreate, DefaultTimeout = BusyTimeoutSeconds }.ToString());
        try
        {
            connection.Open();
            if (fresh && !OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            SqlCommands.Execute(connection, $"PRAGMA busy_timeout = {BusyTimeoutSeconds * 1000}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {(synchronousFull ? "FULL; PRAGMA fullfsync = ON" : "NORMAL")}; PRAGMA foreign_keys = ON;");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> (see <see cref="Open"/>) off the caller's thread, runs <paramref name="prepare"/>
    /// on it (schema, migrations) and wraps it; the connection is closed again when <paramref name="prepare"/> throws.
    /// </summary>
    public static async Task<SerializedConnection> OpenAsync(string path, bool synchronousFull, Action<SqliteConnection> prepare)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(prepare);
        await Task.Yield();
        var connection = Open(path, synchronousFull);
        try
        {
            prepare(connection);
            return new SerializedConnection(connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public async ValueTask<T> RunAsync<T>(Func<SqliteConnection, T> work, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return await Task.Run(() => work(connection), cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (!_disposed)
            {
                _disposed = true;
                await connection.DisposeAsync();
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}
