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
/// Microsoft.Data.Sqlite performs its "async" operations synchronously. Reads therefore move to the
/// thread pool before touching the database, so awaiting one never holds the caller's thread; appends
/// and trims run on the caller's thread (the append pipeline's and the retention loop's own loops) for
/// the duration of the database work, including the commit's fsync.
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

    // Each topic's id and committed head. Guarded by _writeLock; loaded lazily from the topics table,
    // and a head only advances after a commit succeeds.
    private readonly Dictionary<string, TopicState> _topics = new(StringComparer.Ordinal);

    // The topics the batch in progress stored into (reused between batches; guarded by _writeLock).
    private readonly List<TopicState> _touched = [];
    private long _batchNumber;

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

    /// <inheritdoc />
    public async ValueTask<bool> RenameTopicAsync(string from, string to, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            await Task.Yield(); // the commit below fsyncs: never on the caller's (possibly socket) thread
            using var transaction = _writer.BeginTransaction(deferred: false);
            using (var exists = _writer.CreateCommand())
            {
                exists.CommandText = "SELECT 1 FROM topics WHERE topic = $to;";
                exists.Parameters.AddWithValue("$to", to);
                if (exists.ExecuteScalar() is not null)
                {
                    return false;
                }
            }
            using (var rename = _writer.CreateCommand())
            {
                rename.CommandText = "UPDATE topics SET topic = $to WHERE topic = $from;";
                rename.Parameters.AddWithValue("$to", to);
                rename.Parameters.AddWithValue("$from", from);
                rename.ExecuteNonQuery();
            }
            transaction.Commit();
            // The head cache is keyed by name: both names reload from the table on next use.
            _topics.Remove(from);
            _topics.Remove(to);
            return true;
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
            _topics.Clear();
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
    // add allocations around the same synchronous work. Each topic's head is written once per batch.
    private AppendOutcome[] AppendLocked(IReadOnlyList<AppendRequest> batch)
    {
        var outcomes = new AppendOutcome[batch.Count];
        var batchNumber = ++_batchNumber;
        _touched.Clear();
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

                    var topic = Touch(request.Topic, batchNumber);
                    var offset = topic.PendingHead + 1;
                    var maxTs = Math.Max(topic.PendingMaxTs, request.TimestampMs);
                    if (!_commands.TryInsertMessage(topic.Id, offset, maxTs, request))
                    {
                        // The client id is taken by a retained message, possibly one stored earlier in
                        // this batch (this transaction sees it).
                        var original = _commands.FindByClientId(topic.Id, request.Topic, request.ClientId!)
                            ?? throw new InvalidOperationException($"batch[{i}] was not stored, but no message with its client id was found.");
                        outcomes[i] = new AppendOutcome(original, Duplicate: true);
                        continue;
                    }

                    topic.PendingHead = offset;
                    topic.PendingMaxTs = maxTs;
                    var stored = new StoredMessage(request.Topic, offset, request.Id, request.TimestampMs, request.From, request.Body, request.ClientId, request.MetaJson);
                    outcomes[i] = new AppendOutcome(stored, Duplicate: false);
                }

                foreach (var topic in _touched)
                {
                    if (topic.PendingHead != topic.Head)
                    {
                        _commands.UpdateHead(topic.Id, topic.PendingHead, topic.PendingMaxTs);
                    }
                }

                transaction.Commit();
            }
        }
        catch
        {
            // The transaction rolled back (or its outcome is unknown): forget what this batch touched,
            // including topics it created, so they are reloaded from the database next time.
            foreach (var topic in _touched)
            {
                _topics.Remove(topic.Name);
            }

            _touched.Clear();
            throw;
        }

        foreach (var topic in _touched)
        {
            topic.Head = topic.PendingHead;
            topic.MaxTs = topic.PendingMaxTs;
        }

        _touched.Clear();
        return outcomes;
    }

    // The topic's state, loaded (or its row created) on first use; the first time a batch sees the
    // topic, its pending head starts from the committed head and it joins _touched.
    private TopicState Touch(string name, long batchNumber)
    {
        if (!_topics.TryGetValue(name, out var topic))
        {
            var (id, head, maxTs) = _commands.LoadOrCreateTopic(name);
            topic = new TopicState(name, id) { Head = head, MaxTs = maxTs };
            _topics.Add(name, topic);
        }

        if (topic.BatchNumber != batchNumber)
        {
            topic.BatchNumber = batchNumber;
            topic.PendingHead = topic.Head;
            topic.PendingMaxTs = topic.MaxTs;
            _touched.Add(topic);
        }

        return topic;
    }

    private sealed class TopicState(string name, long id)
    {
        public string Name { get; } = name;

        public long Id { get; } = id;

        /// <summary>The committed head.</summary>
        public long Head { get; set; }

        /// <summary>The committed max_ts: the largest timestamp up to the head.</summary>
        public long MaxTs { get; set; }

        /// <summary>The head including the batch in progress (valid while <see cref="BatchNumber"/> is that batch's).</summary>
        public long PendingHead { get; set; }

        /// <summary>The max_ts including the batch in progress.</summary>
        public long PendingMaxTs { get; set; }

        public long BatchNumber { get; set; }
    }
}
