namespace Parley.Storage.Sqlite;

/// <summary>Tuning for <see cref="SqliteHistoryStore"/>. The defaults suit a hub that acknowledges a
/// message only once it is durable.</summary>
public sealed class SqliteHistoryStoreOptions
{
    /// <summary>
    /// When true (the default), commits run with <c>PRAGMA synchronous=FULL</c> (and <c>fullfsync</c> on
    /// platforms that have it), so a committed batch survives an OS crash or power loss. When false,
    /// <c>synchronous=NORMAL</c> is used: the database stays consistent, but the most recent commits
    /// may be lost on power loss. Only turn this off when losing acknowledged messages is acceptable.
    /// </summary>
    public bool SynchronousFull { get; set; } = true;

    /// <summary>
    /// How long a statement waits for a lock held by another connection (possibly in another process)
    /// before failing with <c>SQLITE_BUSY</c>. Applied as <c>PRAGMA busy_timeout</c> on every
    /// connection. Must be between zero and <see cref="int.MaxValue"/> milliseconds. Default: 5 seconds.
    /// </summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The largest number of messages <see cref="SqliteHistoryStore.TrimAsync"/> deletes in one
    /// transaction. The write lock is released between chunks so appends are not held up by a large
    /// trim. Must be positive. Default: 2000 messages.
    /// </summary>
    public int TrimChunkSize { get; set; } = 2000;
}
