using Microsoft.Data.Sqlite;
using Parley.Hub.History;

namespace Parley.Storage.Sqlite;

/// <summary>
/// The embedded <see cref="IHistoryStore"/>: one SQLite database file in WAL mode. Appends and trims go
/// through a single dedicated writer connection, serialized by a lock; reads use separate pooled
/// read-only connections and run beside the writer. The epoch is created with the database file, so
/// every topic in one database reports the same epoch, and a recreated database gets a new one.
/// </summary>
/// <remarks>
/// Microsoft.Data.Sqlite performs its "async" operations synchronously, so awaiting a member of this
/// class blocks the calling thread for the duration of the database work (including the commit's
/// fsync for appends).
/// <para>Open one instance per database file. Offsets are assigned from an in-memory cache of each
/// topic's head, so a second writer on the same file (another instance or process) makes batches fail
/// with a constraint error until the cache is reloaded; nothing is ever stored under a wrong offset.</para>
/// </remarks>
public sealed partial class SqliteHistoryStore : IHistoryStore
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _trimLock = new(1, 1);
    private readonly SqliteConnection _writer;
    private readonly WriterCommands _commands;
    private readonly string _readConnectionString;
    private readonly string _busyTimeoutPragma;
    private readonly string _epoch;
    private readonly int _trimChunkSize;

    // Each topic's committed head. Guarded by _writeLock; loaded lazily from the topics table and only
    // updated after a commit succeeds.
    private readonly Dictionary<string, long> _heads = new(StringComparer.Ordinal);

    private volatile bool _disposed;

    private SqliteHistoryStore(SqliteConnection writer, WriterCommands commands, string readConnectionString, string busyTimeoutPragma, string epoch, int trimChunkSize)
    {
        _writer = writer;
        _commands = commands;
        _readConnectionString = readConnectionString;
        _busyTimeoutPragma = busyTimeoutPragma;
        _epoch = epoch;
        _trimChunkSize = trimChunkSize;
    }

    /// <summary>The epoch of this database (12 lowercase hex characters), reported by every topic.</summary>
    public string Epoch => _epoch;

    /// <summary>
    /// Opens the database at <paramref name="databasePath"/>, creating its directory, the file and the
    /// schema (with a new random epoch) when missing, and switching it to WAL mode.
    /// </summary>
    /// <param name="databasePath">Path of the database file; relative paths resolve against the current directory.</param>
    /// <param name="options">Tuning; null means the defaults of <see cref="SqliteHistoryStoreOptions"/>.</param>
    /// <param name="cancellationToken">Cancels opening.</param>
    /// <exception cref="NotSupportedException">The file holds a schema version this build does not know.</exception>
    public static async Task<SqliteHistoryStore> OpenAsync(string databasePath, SqliteHistoryStoreOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        options ??= new SqliteHistoryStoreOptions();
        if (options.BusyTimeout < TimeSpan.Zero || options.BusyTimeout.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.BusyTimeout, "BusyTimeout must be between zero and int.MaxValue milliseconds.");
        }

        if (options.TrimChunkSize <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.TrimChunkSize, "TrimChunkSize must be positive.");
        }

        var fullPath = Path.GetFullPath(databasePath);
        var directory = Path.GetDirectoryName(fullPath);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var busyTimeoutMs = (int)options.BusyTimeout.TotalMilliseconds;

        // Microsoft.Data.Sqlite retries SQLITE_BUSY on its own until the command timeout (in seconds)
        // elapses; keep that in line with busy_timeout. Zero would mean "retry forever".
        var commandTimeoutSeconds = Math.Max(1, (int)Math.Ceiling(options.BusyTimeout.TotalSeconds));

        var writerConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = false,
            DefaultTimeout = commandTimeoutSeconds,
        }.ToString();
        var readConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadOnly,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = commandTimeoutSeconds,
        }.ToString();

        var writer = new SqliteConnection(writerConnectionString);
        WriterCommands? commands = null;
        try
        {
            await writer.OpenAsync(cancellationToken);
            await ConfigureWriterAsync(writer, options.SynchronousFull, busyTimeoutMs, cancellationToken);
            var epoch = await EnsureSchemaAsync(writer, cancellationToken);
            commands = new WriterCommands(writer);
            return new SqliteHistoryStore(writer, commands, readConnectionString, BusyTimeoutPragma(busyTimeoutMs), epoch, options.TrimChunkSize);
        }
        catch
        {
            commands?.Dispose();
            await writer.DisposeAsync();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<AppendOutcome>> AppendBatchAsync(IReadOnlyList<AppendRequest> batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch.Count == 0)
        {
            return [];
        }

        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            cancellationToken.ThrowIfCancellationRequested();
            return AppendLocked(batch);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Closes the connections. Waits for an append or trim chunk in progress; later calls on
    /// this instance throw <see cref="ObjectDisposedException"/>. Calling it again does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await _writeLock.WaitAsync();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _heads.Clear();
            // Readers first: the writer, closing last, checkpoints the WAL into the database file.
            using (var pooled = new SqliteConnection(_readConnectionString))
            {
                SqliteConnection.ClearPool(pooled);
            }

            _commands.Dispose();
            await _writer.DisposeAsync();
        }
        finally
        {
            // The semaphores are deliberately not disposed: tasks still waiting on them must wake up
            // and observe _disposed rather than hang.
            _writeLock.Release();
        }
    }

    // Runs the whole batch in one IMMEDIATE transaction on the writer connection. Synchronous calls
    // are used on purpose: this is the hot path and Microsoft.Data.Sqlite's async methods would only
    // add allocations around the same synchronous work.
    private AppendOutcome[] AppendLocked(IReadOnlyList<AppendRequest> batch)
    {
        var outcomes = new AppendOutcome[batch.Count];
        var newHeads = new Dictionary<string, long>(StringComparer.Ordinal);
        Dictionary<(string Topic, string ClientId), StoredMessage>? storedByClientId = null;
        try
        {
            using (var transaction = _writer.BeginTransaction(deferred: false))
            {
                _commands.Enlist(transaction);
                for (var i = 0; i < batch.Count; i++)
                {
                    var request = batch[i];
                    if (request?.Topic is null || request.Id is null || request.From is null || request.Body is null)
                    {
                        throw new ArgumentException($"batch[{i}] is null or has a null Topic, Id, From or Body.", nameof(batch));
                    }

                    if (request.ClientId is { } clientId)
                    {
                        if (storedByClientId is not null && storedByClientId.TryGetValue((request.Topic, clientId), out var earlier))
                        {
                            outcomes[i] = new AppendOutcome(earlier, Duplicate: true);
                            continue;
                        }

                        if (_commands.FindByClientId(request.Topic, clientId) is { } original)
                        {
                            outcomes[i] = new AppendOutcome(original, Duplicate: true);
                            continue;
                        }
                    }

                    if (!newHeads.TryGetValue(request.Topic, out var head))
                    {
                        head = CommittedHead(request.Topic);
                    }

                    var offset = head + 1;
                    newHeads[request.Topic] = offset;
                    _commands.InsertMessage(request, offset);

                    var stored = new StoredMessage(request.Topic, offset, request.Id, request.TimestampMs, request.From, request.Body, request.ClientId, request.MetaJson);
                    outcomes[i] = new AppendOutcome(stored, Duplicate: false);
                    if (request.ClientId is not null)
                    {
                        storedByClientId ??= new Dictionary<(string Topic, string ClientId), StoredMessage>();
                        storedByClientId[(request.Topic, request.ClientId)] = stored;
                    }
                }

                foreach (var (topic, head) in newHeads)
                {
                    _commands.UpsertTopicHead(topic, head);
                }

                transaction.Commit();
            }
        }
        catch
        {
            // The transaction rolled back (or its outcome is unknown): forget what this batch touched
            // so the heads are reloaded from the database next time.
            foreach (var topic in newHeads.Keys)
            {
                _heads.Remove(topic);
            }

            throw;
        }

        foreach (var (topic, head) in newHeads)
        {
            _heads[topic] = head;
        }

        return outcomes;
    }

    private long CommittedHead(string topic)
    {
        if (!_heads.TryGetValue(topic, out var head))
        {
            head = _commands.LoadHead(topic);
            _heads[topic] = head;
        }

        return head;
    }
}
