using System.Collections.Concurrent;
using Parley.Hub.Fleet;

namespace Parley.Hub.Tests.Fleet;

/// <summary>An <see cref="IInstanceStore"/> in memory, for supervisor tests that need no database.</summary>
internal sealed class InMemoryInstanceStore : IInstanceStore
{
    private readonly ConcurrentDictionary<string, InstanceRecord> _records = new(StringComparer.Ordinal);

    public ValueTask<IReadOnlyList<InstanceRecord>> ListAsync(CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IReadOnlyList<InstanceRecord>>([.. _records.Values.OrderBy(r => r.Name, StringComparer.Ordinal)]);

    public ValueTask<InstanceRecord?> GetAsync(string name, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_records.GetValueOrDefault(name));

    public ValueTask<bool> CreateAsync(InstanceRecord instance, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_records.TryAdd(instance.Name, instance));

    public ValueTask<bool> UpdateAsync(InstanceRecord instance, CancellationToken cancellationToken = default)
    {
        if (!_records.ContainsKey(instance.Name))
        {
            return ValueTask.FromResult(false);
        }
        _records[instance.Name] = instance;
        return ValueTask.FromResult(true);
    }

    public ValueTask<bool> DeleteAsync(string name, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_records.TryRemove(name, out _));

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
