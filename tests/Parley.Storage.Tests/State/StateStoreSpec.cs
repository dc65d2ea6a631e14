using Parley.Hub.State;

namespace Parley.Storage.Tests.State;

/// <summary>
/// The specification every <see cref="IStateStore"/> must meet: conditional writes, revisions, budgets,
/// snapshots and durability. An implementation's test class derives from this and supplies the factories.
/// </summary>
public abstract class StateStoreSpec : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly StateLimits Roomy = new(MaxKeys: 1000, MaxBytes: 1 << 20);
    private readonly List<IStateStore> _opened = [];

    /// <summary>A fresh, empty store.</summary>
    protected abstract Task<IStateStore> CreateStoreAsync();

    /// <summary>The data of the store last created, opened again (the previous instance is disposed first).</summary>
    protected abstract Task<IStateStore> ReopenStoreAsync();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync().AsTask().WaitAsync(Timeout);
        }
    }

    private async Task<IStateStore> NewAsync()
    {
        var store = await CreateStoreAsync().WaitAsync(Timeout);
        _opened.Add(store);
        return store;
    }

    private static Task<StateWriteResult> Set(IStateStore store, string key, string json, long? expected = null, string ns = "ns", StateLimits? limits = null) =>
        store.SetAsync(ns, key, json, expected, "alice", 1000, limits ?? Roomy).AsTask().WaitAsync(Timeout);

    [Fact]
    public async Task Sets_version_each_key_and_advance_the_namespace_revision()
    {
        var store = await NewAsync();
        var first = await Set(store, "a", "1");
        var second = await Set(store, "a", "{\"x\":2}");
        var other = await Set(store, "b", "\"text\"");

        Assert.Equal(StateWriteOutcome.Written, first.Outcome);
        Assert.Equal((1L, 1L), (first.Entry!.Version, first.Entry.Revision));
        Assert.Equal((2L, 2L), (second.Entry!.Version, second.Entry.Revision));
        Assert.Equal((1L, 3L), (other.Entry!.Version, other.Entry.Revision));
        var entry = await store.GetAsync("ns", "a");
        Assert.Equal("{\"x\":2}", entry!.ValueJson);
        Assert.Equal("alice", entry.Author);
        Assert.Equal(1000, entry.UpdatedAtMs);
        Assert.Null(await store.GetAsync("ns", "missing"));
        Assert.Null(await store.GetAsync("other-ns", "a")); // namespaces are separate
    }

    [Fact]
    public async Task Compare_and_set_rejects_a_stale_version_and_zero_means_create_only()
    {
        var store = await NewAsync();
        Assert.Equal(StateWriteOutcome.Written, (await Set(store, "k", "1", expected: 0)).Outcome);
        var again = await Set(store, "k", "2", expected: 0);
        Assert.Equal(StateWriteOutcome.Conflict, again.Outcome);
        Assert.Equal(1, again.CurrentVersion);

        Assert.Equal(2, (await Set(store, "k", "2", expected: 1)).Entry!.Version);
        var stale = await Set(store, "k", "3", expected: 1);
        Assert.Equal(StateWriteOutcome.Conflict, stale.Outcome);
        Assert.Equal(2, stale.CurrentVersion);
        Assert.Equal(StateWriteOutcome.Conflict, (await Set(store, "absent", "1", expected: 5)).Outcome);

        Assert.Equal("2", (await store.GetAsync("ns", "k"))!.ValueJson); // refused writes changed nothing
        Assert.Equal(2, (await store.LoadAsync("ns")).Revision);
    }

    [Fact]
    public async Task Deletes_are_conditional_advance_the_revision_and_a_recreated_key_starts_again()
    {
        var store = await NewAsync();
        await Set(store, "k", "1");
        await Set(store, "k", "2");
        Assert.Equal(StateWriteOutcome.Conflict, (await store.DeleteAsync("ns", "k", 1, "bob", 2000)).Outcome);
        var deleted = await store.DeleteAsync("ns", "k", 2, "bob", 2000);
        Assert.Equal(StateWriteOutcome.Written, deleted.Outcome);
        Assert.Equal((2L, 3L, "bob"), (deleted.Entry!.Version, deleted.Entry.Revision, deleted.Entry.Author));
        Assert.Equal(StateWriteOutcome.NotFound, (await store.DeleteAsync("ns", "k", null, "bob", 2000)).Outcome);
        Assert.Equal(StateWriteOutcome.NotFound, (await store.DeleteAsync("ns", "k", 2, "bob", 2000)).Outcome);
        Assert.Equal(1, (await Set(store, "k", "new")).Entry!.Version);
        Assert.Equal(4, (await store.LoadAsync("ns")).Revision);
    }

    [Fact]
    public async Task A_namespace_over_its_key_or_byte_budget_refuses_the_write()
    {
        var store = await NewAsync();
        var twoKeys = new StateLimits(MaxKeys: 2, MaxBytes: (2 * (2 + StateLimits.EntryOverheadBytes)) + 10); // two one-byte keys with one-byte values
        await Set(store, "a", "1", limits: twoKeys);
        await Set(store, "b", "1", limits: twoKeys);
        Assert.Equal(StateWriteOutcome.Full, (await Set(store, "c", "1", limits: twoKeys)).Outcome);
        Assert.Equal(StateWriteOutcome.Written, (await Set(store, "a", "2", limits: twoKeys)).Outcome); // replacing adds no key
        Assert.Equal(StateWriteOutcome.Full, (await Set(store, "a", new string('9', 99), limits: twoKeys)).Outcome);
        Assert.Equal(StateWriteOutcome.Written, (await store.DeleteAsync("ns", "b", null, "x", 1)).Outcome);
        Assert.Equal(StateWriteOutcome.Written, (await Set(store, "c", "1", limits: twoKeys)).Outcome); // a delete frees room
        Assert.Equal(["a", "c"], (await store.LoadAsync("ns")).Entries.Select(e => e.Key));
    }

    [Fact]
    public async Task A_snapshot_lists_every_key_in_order_at_its_revision_and_survives_a_reopen()
    {
        var store = await NewAsync();
        Assert.Equal(0, (await store.LoadAsync("ns")).Revision);
        await Set(store, "zeta", "1");
        await Set(store, "alpha", "[1,2]");
        await Set(store, "mid/x:1", "null");
        await store.DeleteAsync("ns", "zeta", null, "alice", 3);
        await store.DisposeAsync();
        _opened.Remove(store);

        var reopened = await ReopenStoreAsync().WaitAsync(Timeout);
        _opened.Add(reopened);
        var snapshot = await reopened.LoadAsync("ns");
        Assert.Equal(4, snapshot.Revision);
        Assert.Equal(["alpha", "mid/x:1"], snapshot.Entries.Select(e => e.Key));
        Assert.Equal("[1,2]", snapshot.Entries[0].ValueJson);
        Assert.Equal(5, (await Set(reopened, "more", "1")).Entry!.Revision);
    }

    [Fact]
    public async Task Renaming_a_namespace_moves_its_keys_keeps_the_targets_and_never_lowers_the_revision()
    {
        var store = await NewAsync();
        await Set(store, "t-1", "1", ns: "tasks:old");
        await Set(store, "t-2", "2", ns: "tasks:old");
        await Set(store, "t-2", "kept", ns: "tasks:new");
        Assert.Equal(1, await store.RenameNamespaceAsync("tasks:old", "tasks:new"));

        var moved = await store.LoadAsync("tasks:new");
        Assert.Equal(["t-1", "t-2"], moved.Entries.Select(e => e.Key));
        Assert.Equal("kept", moved.Entries[1].ValueJson);
        Assert.Equal(3, moved.Revision);
        Assert.Empty((await store.LoadAsync("tasks:old")).Entries);
        Assert.Equal(4, (await Set(store, "t-3", "3", ns: "tasks:new")).Entry!.Revision);
        Assert.Equal(0, await store.RenameNamespaceAsync("tasks:none", "tasks:other"));
    }

    [Fact]
    public async Task Racing_compare_and_sets_on_one_version_have_one_winner()
    {
        var store = await NewAsync();
        await Set(store, "lock", "\"free\"");
        var racers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => Set(store, "lock", $"\"racer-{i}\"", expected: 1))));
        Assert.Single(racers, r => r.Outcome == StateWriteOutcome.Written);
        Assert.Equal(7, racers.Count(r => r.Outcome == StateWriteOutcome.Conflict));
    }
}
