using Parley.Hub.Fleet;

namespace Parley.Storage.Tests.Fleet;

/// <summary>
/// The specification every <see cref="IInstanceStore"/> must meet: create once per name, update, list in name
/// order, archive and desired state kept, delete, and durability across a reopen.
/// </summary>
public abstract class InstanceStoreSpec : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly List<IInstanceStore> _opened = [];

    /// <summary>A fresh, empty store.</summary>
    protected abstract Task<IInstanceStore> CreateStoreAsync();

    /// <summary>The data of the store last created, opened again (the previous instance is disposed first).</summary>
    protected abstract Task<IInstanceStore> ReopenStoreAsync();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync().AsTask().WaitAsync(Timeout);
        }
    }

    private async Task<IInstanceStore> NewAsync()
    {
        var store = await CreateStoreAsync().WaitAsync(Timeout);
        _opened.Add(store);
        return store;
    }

    private static InstanceRecord Record(string name, bool desired = false, long? archivedAt = null) => new(
        name,
        new InstanceSpec("/bin/sh", ["-c", "echo hi; sleep 1"], "/tmp", new Dictionary<string, string> { ["A"] = "1", ["SECRET"] = "s3cr3t" }, 8080, "http://127.0.0.1:8080/health", RestartPolicy.OnFailure, Terminal: true),
        desired, archivedAt, "owner1", 1000, 1000);

    private static void AssertSame(InstanceRecord expected, InstanceRecord? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.Spec.Command, actual.Spec.Command);
        Assert.Equal(expected.Spec.Args, actual.Spec.Args);
        Assert.Equal(expected.Spec.Cwd, actual.Spec.Cwd);
        Assert.Equal(expected.Spec.Env.OrderBy(p => p.Key), actual.Spec.Env.OrderBy(p => p.Key));
        Assert.Equal((expected.Spec.Port, expected.Spec.HealthUrl, expected.Spec.Restart, expected.Spec.Terminal), (actual.Spec.Port, actual.Spec.HealthUrl, actual.Spec.Restart, actual.Spec.Terminal));
        Assert.Equal((expected.DesiredRunning, expected.ArchivedAtMs, expected.CreatedBy, expected.CreatedAtMs, expected.UpdatedAtMs),
            (actual.DesiredRunning, actual.ArchivedAtMs, actual.CreatedBy, actual.CreatedAtMs, actual.UpdatedAtMs));
    }

    [Fact]
    public async Task Creates_once_per_name_and_reads_back_every_field()
    {
        var store = await NewAsync();
        var web = Record("web");
        Assert.True(await store.CreateAsync(web));
        Assert.False(await store.CreateAsync(Record("web", desired: true))); // the name is taken: nothing changes
        AssertSame(web, await store.GetAsync("web"));
        Assert.Null(await store.GetAsync("missing"));
    }

    [Fact]
    public async Task Lists_in_name_order_with_archived_ones_included()
    {
        var store = await NewAsync();
        await store.CreateAsync(Record("zeta"));
        await store.CreateAsync(Record("alpha", archivedAt: 5));
        await store.CreateAsync(Record("mid"));
        var all = await store.ListAsync();
        Assert.Equal(["alpha", "mid", "zeta"], all.Select(r => r.Name));
        Assert.True(all[0].Archived);
        Assert.False(all[1].Archived);
    }

    [Fact]
    public async Task Updates_desired_state_archive_and_spec_but_not_a_missing_instance()
    {
        var store = await NewAsync();
        var worker = Record("worker");
        await store.CreateAsync(worker);
        var changed = worker with
        {
            DesiredRunning = true,
            ArchivedAtMs = 2000,
            UpdatedAtMs = 2000,
            Spec = worker.Spec with { Args = [], Cwd = null, Env = new Dictionary<string, string>(), Port = null, HealthUrl = null, Restart = RestartPolicy.Always, Terminal = false },
        };
        Assert.True(await store.UpdateAsync(changed));
        AssertSame(changed, await store.GetAsync("worker"));
        Assert.True(await store.UpdateAsync(changed with { ArchivedAtMs = null, DesiredRunning = false }));
        var back = await store.GetAsync("worker");
        Assert.False(back!.Archived);
        Assert.False(back.DesiredRunning);
        Assert.False(await store.UpdateAsync(Record("ghost")));
        Assert.Null(await store.GetAsync("ghost"));
    }

    [Fact]
    public async Task Deletes_and_the_name_can_be_used_again()
    {
        var store = await NewAsync();
        await store.CreateAsync(Record("tmp"));
        Assert.True(await store.DeleteAsync("tmp"));
        Assert.False(await store.DeleteAsync("tmp"));
        Assert.Empty(await store.ListAsync());
        Assert.True(await store.CreateAsync(Record("tmp")));
    }

    [Fact]
    public async Task Survives_a_reopen()
    {
        var store = await NewAsync();
        var running = Record("running", desired: true);
        var archived = Record("archived", archivedAt: 3000);
        await store.CreateAsync(running);
        await store.CreateAsync(archived);
        await store.DisposeAsync();
        _opened.Remove(store);

        var reopened = await ReopenStoreAsync().WaitAsync(Timeout);
        _opened.Add(reopened);
        AssertSame(running, await reopened.GetAsync("running"));
        AssertSame(archived, await reopened.GetAsync("archived"));
    }
}
