namespace Parley.Hub.State;

/// <summary>One key of a namespace.</summary>
/// <param name="Key">The key.</param>
/// <param name="ValueJson">The value: one JSON document, as the client sent it.</param>
/// <param name="Version">1 when created, +1 on every set. A key deleted and set again starts at 1.</param>
/// <param name="Author">Who wrote the current value (the principal's name).</param>
/// <param name="UpdatedAtMs">When it was written (Unix ms).</param>
/// <param name="Revision">The namespace revision of that write.</param>
public sealed record StateEntry(string Key, string ValueJson, long Version, string Author, long UpdatedAtMs, long Revision);

/// <summary>A namespace as of one revision: every key, ordered by key.</summary>
/// <param name="Revision">The namespace's last write (0 for a namespace never written). Every set and delete adds 1.</param>
public sealed record StateSnapshot(long Revision, IReadOnlyList<StateEntry> Entries);

/// <summary>How a conditional write ended.</summary>
public enum StateWriteOutcome
{
    /// <summary>Done; <see cref="StateWriteResult.Entry"/> is the new entry (for a delete, the removed one with the delete's revision).</summary>
    Written,

    /// <summary>The expected version did not match; nothing changed. <see cref="StateWriteResult.CurrentVersion"/> is the key's version (0 when absent).</summary>
    Conflict,

    /// <summary>A delete of a key that does not exist (whatever version was expected); nothing changed.</summary>
    NotFound,

    /// <summary>The namespace would exceed its key or byte budget; nothing changed.</summary>
    Full,
}

/// <summary>The result of <see cref="IStateStore.SetAsync"/> or <see cref="IStateStore.DeleteAsync"/>.</summary>
public readonly record struct StateWriteResult(StateWriteOutcome Outcome, StateEntry? Entry, long CurrentVersion);

/// <summary>Limits a store enforces per namespace inside the write's transaction.</summary>
/// <param name="MaxKeys">Keys a namespace may hold.</param>
/// <param name="MaxBytes">Total size a namespace may hold: the UTF-8 bytes of every key and value plus <see cref="EntryOverheadBytes"/> per key.</param>
public readonly record struct StateLimits(int MaxKeys, long MaxBytes)
{
    /// <summary>What an entry costs beyond its key and value in a snapshot (version, author, times, JSON punctuation), counted against <see cref="MaxBytes"/>.</summary>
    public const int EntryOverheadBytes = 128;
}

/// <summary>
/// Durable key-value state by namespace (<c>state:&lt;namespace&gt;</c> topics; docs/protocol.md §State).
/// Every write is atomic and durable before it returns: the version check, the write, the namespace's
/// revision and its budget move together. Implementations must be safe for concurrent callers; the
/// state channel serialises writes per namespace itself so that broadcasts follow revision order.
/// Specification: <c>StateStoreSpec</c> in tests/Parley.Storage.Tests.
/// </summary>
public interface IStateStore : IAsyncDisposable
{
    /// <summary>Every key of <paramref name="ns"/> and its revision (an empty snapshot at revision 0 for an unknown namespace).</summary>
    ValueTask<StateSnapshot> LoadAsync(string ns, CancellationToken cancellationToken = default);

    /// <summary>One key, or null.</summary>
    ValueTask<StateEntry?> GetAsync(string ns, string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes a key. <paramref name="expectedVersion"/>: null writes unconditionally; 0 only creates (the
    /// key must be absent); N only replaces version N (compare-and-set).
    /// </summary>
    ValueTask<StateWriteResult> SetAsync(string ns, string key, string valueJson, long? expectedVersion, string author, long nowMs, StateLimits limits, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves every key of <paramref name="from"/> into <paramref name="to"/> (a renamed room's task board).
    /// Keys already in <paramref name="to"/> stay and win over a moved key of the same name; the target's
    /// revision becomes the sum of both, so it never goes back. Returns how many keys moved.
    /// </summary>
    ValueTask<int> RenameNamespaceAsync(string from, string to, CancellationToken cancellationToken = default);

    /// <summary>Deletes a key; <paramref name="expectedVersion"/>: null deletes unconditionally, N only version N.</summary>
    ValueTask<StateWriteResult> DeleteAsync(string ns, string key, long? expectedVersion, string author, long nowMs, CancellationToken cancellationToken = default);
}
