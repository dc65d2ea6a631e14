namespace Parley.Protocol.Tests;

public class CloseStatusTests
{
    [Theory]
    [InlineData(1001)]
    [InlineData(1011)]
    [InlineData(4000)]
    [InlineData(4008)]
    [InlineData(4401)]
    [InlineData(1012)]
    [InlineData(1013)]
    public void Codes_that_mean_come_back(ushort code) => Assert.Equal(CloseAdvice.Reconnect, CloseStatus.AdviceFor(code));

    [Theory]
    [InlineData(1000)]
    [InlineData(1002)]
    [InlineData(1007)]
    [InlineData(1008)]
    [InlineData(1009)]
    [InlineData(4403)]
    public void Codes_that_mean_stop(ushort code) => Assert.Equal(CloseAdvice.Stop, CloseStatus.AdviceFor(code));

    [Fact]
    public void Constants_have_their_wire_values()
    {
        Assert.Equal(
            new ushort[] { 1000, 1001, 1002, 1007, 1008, 1009, 1011, 4000, 4008, 4401, 4403 },
            new[]
            {
                CloseStatus.Normal, CloseStatus.GoingAway, CloseStatus.ProtocolError, CloseStatus.InvalidPayload,
                CloseStatus.PolicyViolation, CloseStatus.MessageTooBig, CloseStatus.InternalError, CloseStatus.IdleTimeout,
                CloseStatus.SlowConsumer, CloseStatus.TokenExpired, CloseStatus.Forbidden,
            });
    }
}
