using Parley.Hub.Channels;
using Parley.Hub.Connections;

namespace Parley.Hub.Tests;

/// <summary><see cref="JoinedTopics"/>: the small array and the switch to a dictionary past eight topics.</summary>
public sealed class JoinedTopicsTests : IAsyncLifetime
{
    private HubHarness _harness = null!;

    public Task InitializeAsync()
    {
        _harness = HubHarness.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    private Subscriber NewSubscriber(string topic, string joinRef)
    {
        var (connection, _) = _harness.Connect();
        return new Topic(topic, new HubMetrics()).BeginSubscribe(connection, joinRef, storeHead: 0, out _)!;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(30)]
    public void Set_get_replace_remove_and_take_all(int count)
    {
        var handler = new Parley.Hub.Rooms.RoomChannel(_harness.Hub);
        var joined = new JoinedTopics();
        var subscribers = Enumerable.Range(0, count).Select(i => NewSubscriber($"room:{i}", "1")).ToList();
        for (var i = 0; i < count; i++)
        {
            joined.Set($"room:{i}", handler, subscribers[i]);
        }
        Assert.Equal(count, joined.Count);

        for (var i = 0; i < count; i++)
        {
            Assert.True(joined.TryGet($"room:{i}", out var entry));
            Assert.Same(subscribers[i], entry.Subscriber);
        }
        Assert.False(joined.TryGet("room:missing", out _));

        var replacement = NewSubscriber("room:0", "2");
        joined.Set("room:0", handler, replacement);
        Assert.Equal(count, joined.Count);
        Assert.True(joined.TryGet("room:0", out var replaced));
        Assert.Same(replacement, replaced.Subscriber);

        Assert.True(joined.Remove("room:0", out var removed));
        Assert.Same(replacement, removed.Subscriber);
        Assert.False(joined.Remove("room:0", out _));
        Assert.False(joined.TryGet("room:0", out _));
        Assert.Equal(count - 1, joined.Count);
        for (var i = 1; i < count; i++)
        {
            Assert.True(joined.TryGet($"room:{i}", out var entry));
            Assert.Same(subscribers[i], entry.Subscriber);
        }

        var all = joined.TakeAll();
        Assert.Equal(subscribers.Skip(1).OrderBy(s => s.Topic.Name), all.Select(e => e.Subscriber).OrderBy(s => s.Topic.Name));
        Assert.Equal(0, joined.Count);
        Assert.False(joined.TryGet("room:1", out _));
    }
}
