using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.Tests;

/// <summary><see cref="Topic"/>: buffered joins, the join race and live delivery, without sockets.</summary>
public sealed class TopicTests : IAsyncLifetime
{
    private HubHarness _harness = null!;
    private HubMetrics _metrics = null!;

    public Task InitializeAsync()
    {
        _harness = HubHarness.Start();
        _metrics = new HubMetrics();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _harness.DisposeAsync();

    private Topic NewTopic() => new("room:t", _metrics);

    private static byte[] Live(long offset) =>
        WireFrames.Text(null, null, "room:t", "msg", offset, static (w, o) => w.WriteNumberValue(o));

    private static string LiveText(long offset) => $"[null,null,\"room:t\",\"msg\",{offset}]";

    [Fact]
    public void Publishes_while_buffering_are_delivered_after_complete_in_order()
    {
        var topic = NewTopic();
        var (connection, transport) = _harness.Connect();

        var subscriber = topic.BeginSubscribe(connection, "1", storeHead: 5, out var replayThrough)!;
        Assert.Equal(5, replayThrough);
        Assert.Equal(1, topic.SubscriberCount);
        Assert.Same(topic, subscriber.Topic);
        Assert.Equal("1", subscriber.JoinRef);

        topic.Publish(6, Live(6));
        topic.Publish(7, Live(7));
        Assert.Empty(transport.Frames); // still replaying

        topic.CompleteSubscribe(subscriber);
        Assert.Equal([LiveText(6), LiveText(7)], transport.Frames);

        topic.Publish(8, Live(8));
        Assert.Equal([LiveText(6), LiveText(7), LiveText(8)], transport.Frames);
        Assert.Equal(3, _metrics.MessagesDelivered);
    }

    [Fact]
    public void Unsubscribing_in_any_order_keeps_every_remaining_subscriber_live()
    {
        var topic = NewTopic();
        var members = new List<(Subscriber Subscriber, InMemoryTransport Transport)>();
        for (var i = 0; i < 40; i++)
        {
            var (connection, transport) = _harness.Connect();
            var subscriber = topic.BeginSubscribe(connection, "1", storeHead: 0, out _)!;
            topic.CompleteSubscribe(subscriber);
            members.Add((subscriber, transport));
        }

        // Remove the first, the last, and every third one in between (holes filled from the end).
        var removed = members.Where((_, i) => i == 0 || i == 39 || i % 3 == 1).ToList();
        foreach (var (subscriber, _) in removed)
        {
            topic.Unsubscribe(subscriber);
            topic.Unsubscribe(subscriber); // idempotent
        }
        topic.Publish(1, Live(1));

        Assert.Equal(members.Count - removed.Count, topic.SubscriberCount);
        foreach (var (subscriber, transport) in members)
        {
            var expected = removed.Any(r => ReferenceEquals(r.Subscriber, subscriber)) ? Array.Empty<string>() : [LiveText(1)];
            Assert.Equal(expected, transport.Frames);
        }
    }

    [Fact]
    public void Complete_without_buffered_frames_sends_nothing()
    {
        var topic = NewTopic();
        var (connection, transport) = _harness.Connect();
        var subscriber = topic.BeginSubscribe(connection, "1", storeHead: 0, out _)!;

        topic.CompleteSubscribe(subscriber);

        Assert.Empty(transport.Frames);
        topic.Publish(1, Live(1));
        Assert.Equal([LiveText(1)], transport.Frames);
    }

    [Fact]
    public void Publish_at_or_below_the_delivered_head_is_skipped()
    {
        // The join race: a joiner reads the store head (5) and replays through it; the pipeline's publish of
        // offset 5 arriving afterwards must not be delivered a second time.
        var topic = NewTopic();
        var (connection, transport) = _harness.Connect();
        var subscriber = topic.BeginSubscribe(connection, "1", storeHead: 5, out var replayThrough)!;
        topic.CompleteSubscribe(subscriber);
        Assert.Equal(5, replayThrough);

        topic.Publish(5, Live(5));
        topic.Publish(3, Live(3));
        Assert.Empty(transport.Frames);

        topic.Publish(6, Live(6));
        topic.Publish(6, Live(6));
        Assert.Equal([LiveText(6)], transport.Frames);
    }

    [Fact]
    public void A_later_joiner_replays_through_the_delivered_head_not_its_stale_store_head()
    {
        var topic = NewTopic();
        var (first, _) = _harness.Connect("a");
        var (second, secondTransport) = _harness.Connect("b");
        topic.CompleteSubscribe(topic.BeginSubscribe(first, "1", storeHead: 2, out _)!);
        topic.Publish(3, Live(3));
        topic.Publish(4, Live(4));

        // The second joiner read the store before 3 and 4 were committed.
        var subscriber = topic.BeginSubscribe(second, "1", storeHead: 2, out var replayThrough)!;
        Assert.Equal(4, replayThrough); // replays 3 and 4 from the store...
        topic.Publish(4, Live(4));      // ...so a late publish of 4 is not duplicated
        topic.Publish(5, Live(5));
        topic.CompleteSubscribe(subscriber);

        Assert.Equal([LiveText(5)], secondTransport.Frames);
    }

    [Fact]
    public void First_subscriber_starts_from_a_newer_store_head_than_anything_published()
    {
        var topic = NewTopic();
        var (connection, transport) = _harness.Connect();
        topic.Publish(1, Live(1)); // nobody listening yet

        var subscriber = topic.BeginSubscribe(connection, "1", storeHead: 10, out var replayThrough)!;
        Assert.Equal(10, replayThrough);
        topic.CompleteSubscribe(subscriber);
        topic.Publish(10, Live(10));
        topic.Publish(11, Live(11));

        Assert.Equal([LiveText(11)], transport.Frames);
    }

    [Fact]
    public void Unsubscribe_stops_delivery_and_is_idempotent()
    {
        var topic = NewTopic();
        var (a, aTransport) = _harness.Connect("a");
        var (b, bTransport) = _harness.Connect("b");
        var subA = topic.BeginSubscribe(a, "1", 0, out _)!;
        var subB = topic.BeginSubscribe(b, "1", 0, out _)!;
        topic.CompleteSubscribe(subA);
        topic.CompleteSubscribe(subB);
        topic.Publish(1, Live(1));

        topic.Unsubscribe(subA);
        topic.Unsubscribe(subA);
        topic.Publish(2, Live(2));

        Assert.Equal(1, topic.SubscriberCount);
        Assert.Equal([LiveText(1)], aTransport.Frames);
        Assert.Equal([LiveText(1), LiveText(2)], bTransport.Frames);

        topic.Unsubscribe(subB);
        Assert.Equal(0, topic.SubscriberCount);
    }

    [Fact]
    public void Unsubscribe_while_buffering_drops_the_buffer()
    {
        var topic = NewTopic();
        var (connection, transport) = _harness.Connect();
        var subscriber = topic.BeginSubscribe(connection, "1", 0, out _)!;
        topic.Publish(1, Live(1));

        topic.Unsubscribe(subscriber);
        topic.Publish(2, Live(2));

        Assert.Empty(transport.Frames);
        Assert.Equal(0, topic.SubscriberCount);
    }

    [Fact]
    public void Broadcast_skips_buffering_subscribers_and_does_not_move_the_head()
    {
        var topic = NewTopic();
        var (live, liveTransport) = _harness.Connect("live", presence: true);
        var (joining, joiningTransport) = _harness.Connect("joining", presence: true);
        topic.CompleteSubscribe(topic.BeginSubscribe(live, "1", 0, out _)!);
        var buffering = topic.BeginSubscribe(joining, "2", 0, out _)!;
        var presence = WireFrames.EmptyEvent(null, null, "room:t", "presence_diff");

        topic.Broadcast(presence);
        topic.CompleteSubscribe(buffering);

        Assert.Equal(["""[null,null,"room:t","presence_diff",{}]"""], liveTransport.Frames);
        Assert.Empty(joiningTransport.Frames);

        topic.Publish(1, Live(1)); // head unchanged by the broadcast: offset 1 still delivered
        Assert.Equal(LiveText(1), liveTransport.Frames[^1]);
        Assert.Equal([LiveText(1)], joiningTransport.Frames);
    }

    [Fact]
    public void A_full_transport_does_not_stop_delivery_to_others()
    {
        var topic = NewTopic();
        var (slow, slowTransport) = _harness.Connect("slow", byteLimit: 30);
        var (fast, fastTransport) = _harness.Connect("fast");
        topic.CompleteSubscribe(topic.BeginSubscribe(slow, "1", 0, out _)!);
        topic.CompleteSubscribe(topic.BeginSubscribe(fast, "1", 0, out _)!);

        topic.Publish(1, Live(1)); // 2 + 28 bytes: fits exactly
        topic.Publish(2, Live(2)); // overflows the slow one

        Assert.Equal([LiveText(1)], slowTransport.Frames);
        Assert.Equal(CloseStatus.SlowConsumer, slowTransport.CloseCode);
        Assert.Equal([LiveText(1), LiveText(2)], fastTransport.Frames);
        Assert.Equal(3, _metrics.MessagesDelivered);
    }

    [Fact]
    public void Buffering_more_than_the_replay_allowance_closes_the_joiner_as_a_slow_consumer()
    {
        var topic = NewTopic();
        var (connection, transport) = _harness.Connect();
        _ = topic.BeginSubscribe(connection, "1", 0, out _)!;
        var frame = Live(1);
        var allowance = connection.MaxBufferedBytesDuringReplay / frame.Length; // frames that fit in the byte allowance

        for (var offset = 1; offset <= allowance; offset++)
        {
            topic.Publish(offset, frame);
        }
        Assert.False(transport.IsClosing);

        topic.Publish(allowance + 1, frame);
        Assert.True(transport.IsClosing);
        Assert.Equal(CloseStatus.SlowConsumer, transport.CloseCode);
        Assert.Equal(1, _harness.Hub.Metrics.SlowConsumerDisconnects);
    }

    [Fact]
    public void The_last_subscriber_leaving_evicts_the_topic_and_a_stale_object_refuses_new_subscribers()
    {
        var registry = new TopicRegistry(_metrics);
        var topic = registry.GetOrAdd("room:evict");
        var (connection, _) = _harness.Connect();
        var subscriber = topic.BeginSubscribe(connection, "1", 0, out _)!;
        topic.CompleteSubscribe(subscriber);
        Assert.Equal(1, registry.Count);

        topic.Unsubscribe(subscriber);
        Assert.Equal(0, registry.Count);
        Assert.Null(topic.BeginSubscribe(connection, "2", 0, out _)); // the joiner must fetch a fresh topic
        Assert.NotSame(topic, registry.GetOrAdd("room:evict"));
    }

    [Fact]
    public void Registry_returns_one_topic_per_name()
    {
        var registry = new TopicRegistry(_metrics);

        var a = registry.GetOrAdd("room:a");
        Assert.Same(a, registry.GetOrAdd("room:a"));
        Assert.NotSame(a, registry.GetOrAdd("room:b"));
        Assert.True(registry.TryGet("room:a", out var found));
        Assert.Same(a, found);
        Assert.False(registry.TryGet("room:c", out _));
        Assert.Equal(2, registry.Count);
        Assert.Equal("room:a", a.Name);
    }
}
