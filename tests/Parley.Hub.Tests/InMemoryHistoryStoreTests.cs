using Parley.Hub.History;

namespace Parley.Hub.Tests;

/// <summary>Sanity checks that the test store follows the <see cref="IHistoryStore"/> contract the hub relies on.</summary>
public class InMemoryHistoryStoreTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static AppendRequest Req(string topic, string id, long ts = 1000, string? clientId = null) => new(topic, id, ts, "alice", "b-" + id, clientId, null);

    [Fact]
    public async Task Offsets_duplicates_reads_and_trim()
    {
        var store = new InMemoryHistoryStore("e1");
        var outcomes = await store.AppendBatchAsync([Req("t", "a", 1000, "k"), Req("t", "b", 2000, "k"), Req("u", "c"), Req("t", "d", 3000)]).AsTask().WaitAsync(Timeout);

        Assert.Equal([1L, 1L, 1L, 2L], outcomes.Select(o => o.Message.Offset));
        Assert.Equal([false, true, false, false], outcomes.Select(o => o.Duplicate));
        Assert.Equal("a", outcomes[1].Message.Id);
        Assert.Equal(new TopicPosition(0, "e1", 1, 0), await store.GetPositionAsync("none").AsTask().WaitAsync(Timeout));
        Assert.Equal(["d"], (await store.ReadRangeAsync("t", 1, 5, 10).AsTask().WaitAsync(Timeout)).Select(m => m.Id));
        Assert.Equal(["d", "a"], (await store.ReadBeforeAsync("t", long.MaxValue, 10).AsTask().WaitAsync(Timeout)).Select(m => m.Id));
        Assert.Equal(["d"], (await store.ReadSinceTimeAsync("t", 2500, long.MaxValue, 10).AsTask().WaitAsync(Timeout)).Select(m => m.Id));

        Assert.Equal(1, await store.TrimAsync(new RetentionPolicy(1, TimeSpan.Zero), 0).AsTask().WaitAsync(Timeout));
        Assert.Equal(new TopicPosition(2, "e1", 2, 1000), await store.GetPositionAsync("t").AsTask().WaitAsync(Timeout));
        Assert.Equal(2, await store.TrimAsync(new RetentionPolicy(0, TimeSpan.FromSeconds(1)), 1_000_000).AsTask().WaitAsync(Timeout));
        Assert.Equal(new TopicPosition(2, "e1", 3, 3000), await store.GetPositionAsync("t").AsTask().WaitAsync(Timeout));
        Assert.Equal(new TopicPosition(1, "e1", 2, 1000), await store.GetPositionAsync("u").AsTask().WaitAsync(Timeout));

        // A trimmed client id is no longer a duplicate; offsets continue from the head.
        var again = await store.AppendBatchAsync([Req("t", "e", 4000, "k")]).AsTask().WaitAsync(Timeout);
        Assert.Equal((3L, false), (again[0].Message.Offset, again[0].Duplicate));

        await store.DisposeAsync().AsTask().WaitAsync(Timeout);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.GetPositionAsync("t").AsTask().WaitAsync(Timeout));
    }

    [Fact]
    public async Task A_failed_batch_stores_nothing()
    {
        var store = new InMemoryHistoryStore { FailNextAppend = new IOException("boom") };

        await Assert.ThrowsAsync<IOException>(() => store.AppendBatchAsync([Req("t", "a")]).AsTask().WaitAsync(Timeout));

        Assert.Equal(0, (await store.GetPositionAsync("t").AsTask().WaitAsync(Timeout)).Head);
        Assert.Equal(1, (await store.AppendBatchAsync([Req("t", "b")]).AsTask().WaitAsync(Timeout))[0].Message.Offset);
    }
}
