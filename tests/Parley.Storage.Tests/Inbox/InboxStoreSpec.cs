using Parley.Hub.Inbox;
using Parley.Storage.Sqlite.Inbox;

namespace Parley.Storage.Tests.Inbox;

/// <summary>The specification every <see cref="IInboxStore"/> must meet; <see cref="SqliteInboxStoreTests"/> runs it on SQLite.</summary>
public abstract class InboxStoreSpec : IAsyncLifetime
{
    private static readonly string[] Unread = [DeliveryStates.Queued, DeliveryStates.Delivered];
    private readonly List<IInboxStore> _opened = [];

    protected abstract Task<IInboxStore> CreateStoreAsync();

    protected abstract Task<IInboxStore> ReopenStoreAsync();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _opened)
        {
            await store.DisposeAsync();
        }
    }

    private async Task<IInboxStore> NewAsync()
    {
        var store = await CreateStoreAsync();
        _opened.Add(store);
        return store;
    }

    private static DirectMessage Dm(string id, string body, string priority = DmPriorities.Next) => new(id, "alice", "bob", body, priority, 1000);

    [Fact]
    public async Task Each_recipient_gets_the_next_seq_and_reads_in_order_across_a_reopen()
    {
        var store = await NewAsync();
        var first = await store.StoreAsync(Dm("dm-1", "one"), ["bob", "carol"]);
        await store.StoreAsync(Dm("dm-2", "two"), ["bob"]);
        await store.StoreAsync(Dm("dm-3", "three"), ["carol", "bob"]);
        Assert.Equal([1L, 1L], first.Select(i => i.Seq));
        Assert.All(first, i => Assert.Equal(DeliveryStates.Queued, i.State));
        await store.DisposeAsync();
        _opened.Remove(store);

        var reopened = await ReopenStoreAsync();
        _opened.Add(reopened);
        var bob = await reopened.ReadAsync("bob", 0, Unread, 100);
        Assert.Equal(["one", "two", "three"], bob.Select(i => i.Message.Body));
        Assert.Equal([1L, 2L, 3L], bob.Select(i => i.Seq));
        Assert.Equal(["dm-1", "dm-3"], (await reopened.ReadAsync("carol", 0, Unread, 100)).Select(i => i.Message.Id));
        Assert.Equal(["three"], (await reopened.ReadAsync("bob", 2, Unread, 100)).Select(i => i.Message.Body));
        Assert.Single(await reopened.ReadAsync("bob", 0, Unread, 1));
    }

    [Fact]
    public async Task States_only_move_forward_and_status_shows_every_recipient()
    {
        var store = await NewAsync();
        await store.StoreAsync(Dm("dm-1", "hi"), ["bob", "carol", "dave"]);
        Assert.Equal(1, await store.MarkAsync("bob", [1], DeliveryStates.Delivered, 2000));
        Assert.Equal(0, await store.MarkAsync("bob", [1], DeliveryStates.Delivered, 2001)); // already there
        var read = Assert.Single(await store.MarkReadAsync("carol", ["dm-1"], 3000));
        Assert.Equal(("carol", DeliveryStates.Read, 3000L, "dm-1"), (read.Recipient, read.State, read.StateAtMs, read.Message.Id));
        Assert.Empty(await store.MarkReadAsync("carol", ["dm-1"], 3000)); // already read
        Assert.Equal(0, await store.MarkAsync("carol", [1], DeliveryStates.Delivered, 3001)); // read never goes back
        Assert.Empty(await store.MarkReadAsync("carol", ["dm-unknown"], 3002));

        var status = await store.StatusAsync("dm-1");
        Assert.NotNull(status);
        Assert.Equal("hi", status.Value.Message.Body);
        Assert.Equal(
            [("bob", DeliveryStates.Delivered, 2000L), ("carol", DeliveryStates.Read, 3000L), ("dave", DeliveryStates.Queued, 1000L)],
            status.Value.Recipients.Select(r => (r.Recipient, r.State, r.StateAtMs)));
        Assert.Null(await store.StatusAsync("dm-nope"));
        Assert.Empty(await store.ReadAsync("carol", 0, Unread, 10));
        Assert.Single(await store.ReadAsync("bob", 0, [DeliveryStates.Delivered], 10));
    }

    [Fact]
    public async Task A_correlation_id_is_kept_with_the_message_and_absent_stays_null()
    {
        var store = await NewAsync();
        await store.StoreAsync(Dm("dm-1", "one") with { CorrelationId = "chain-7" }, ["bob"]);
        await store.StoreAsync(Dm("dm-2", "two"), ["bob"]);
        Assert.Equal(["chain-7", null], (await store.ReadAsync("bob", 0, Unread, 10)).Select(i => i.Message.CorrelationId));
        Assert.Equal("chain-7", (await store.StatusAsync("dm-1"))!.Value.Message.CorrelationId);
    }

    [Fact]
    public async Task Concurrent_sends_to_one_recipient_get_distinct_consecutive_seqs()
    {
        var store = await NewAsync();
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(async () => await store.StoreAsync(Dm($"dm-{i}", $"m{i}"), ["bob"]))));
        var items = await store.ReadAsync("bob", 0, Unread, 100);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), items.Select(i => i.Seq));
    }
}

public sealed class SqliteInboxStoreTests : InboxStoreSpec, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-inbox-tests", Guid.NewGuid().ToString("N"));

    private string DatabasePath => Path.Combine(_directory, "inbox.db");

    protected override async Task<IInboxStore> CreateStoreAsync()
    {
        Directory.CreateDirectory(_directory);
        return await SqliteInboxStore.OpenAsync(DatabasePath);
    }

    protected override async Task<IInboxStore> ReopenStoreAsync() => await SqliteInboxStore.OpenAsync(DatabasePath);

    [Fact]
    public async Task An_inbox_made_before_correlation_ids_gets_the_column_and_keeps_its_messages()
    {
        Directory.CreateDirectory(_directory);
        using (var old = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DatabasePath};Pooling=False"))
        {
            old.Open();
            using var command = old.CreateCommand();
            command.CommandText = """
                CREATE TABLE dm_messages (id TEXT PRIMARY KEY, sender TEXT NOT NULL, target TEXT NOT NULL, body TEXT NOT NULL, priority TEXT NOT NULL, sent_at INTEGER NOT NULL) WITHOUT ROWID;
                CREATE TABLE dm_items (recipient TEXT NOT NULL, seq INTEGER NOT NULL, message_id TEXT NOT NULL REFERENCES dm_messages(id), state TEXT NOT NULL,
                    state_at INTEGER NOT NULL, PRIMARY KEY (recipient, seq)) WITHOUT ROWID;
                INSERT INTO dm_messages VALUES ('dm-old', 'alice', 'bob', 'kept', 'next', 1000);
                INSERT INTO dm_items VALUES ('bob', 1, 'dm-old', 'queued', 1000);
                """;
            command.ExecuteNonQuery();
        }
        await using var store = await SqliteInboxStore.OpenAsync(DatabasePath);
        var old1 = Assert.Single(await store.ReadAsync("bob", 0, [DeliveryStates.Queued], 10));
        Assert.Equal(("kept", (string?)null), (old1.Message.Body, old1.Message.CorrelationId));
        await store.StoreAsync(new DirectMessage("dm-new", "alice", "bob", "new", DmPriorities.Next, 2000, "c-1"), ["bob"]);
        await store.DisposeAsync();
        await using var reopened = await SqliteInboxStore.OpenAsync(DatabasePath); // the check runs again and adds nothing
        Assert.Equal([null, "c-1"], (await reopened.ReadAsync("bob", 0, [DeliveryStates.Queued], 10)).Select(i => i.Message.CorrelationId));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
