namespace Parley.Hub.Fleet;

/// <summary>
/// Where fleet instances are kept (SQLite <c>fleet.db</c> today). Only the spec and the operator's intent are
/// stored; what a process is doing right now (status, pid, restarts) lives in the supervisor and starts
/// again from <c>stopped</c> on every hub start. Implementations run their I/O off the caller's thread.
/// </summary>
public interface IInstanceStore : IAsyncDisposable
{
    /// <summary>Every instance, archived ones included, ordered by name.</summary>
    ValueTask<IReadOnlyList<InstanceRecord>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>The instance named <paramref name="name"/>, or null.</summary>
    ValueTask<InstanceRecord?> GetAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Stores a new instance; false (and nothing written) when the name is taken.</summary>
    ValueTask<bool> CreateAsync(InstanceRecord instance, CancellationToken cancellationToken = default);

    /// <summary>Replaces the spec, desired state, archive time and update time of an existing instance; false when there is none.</summary>
    ValueTask<bool> UpdateAsync(InstanceRecord instance, CancellationToken cancellationToken = default);

    /// <summary>Removes an instance; false when there was none.</summary>
    ValueTask<bool> DeleteAsync(string name, CancellationToken cancellationToken = default);
}
